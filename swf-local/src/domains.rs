//! Domains, activity types and workflow types: register, describe, list, deprecate,
//! undeprecate, delete.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value, json};

use crate::error::{Fault, SwfError, SwfResult};
use crate::history::list_page;
use crate::model::{
    Core, Domain, MAX_DOMAINS, Status, TypeRec, check_activity_timeout,
    check_decision_task_timeout, check_execution_timeout, get_str, now_ts, parse_duration, req_str,
};

/// SWF's quota of tags on one resource (a domain); one more is a TooManyTagsFault.
const MAX_TAGS: usize = 50;

/// RegisterDomain: "The maximum workflow execution retention period is 90 days."
const MAX_RETENTION_DAYS: u64 = 90;

/// SWF's quota of registered types of each kind (activity, workflow) per domain, deprecated
/// ones included.
const MAX_TYPES_PER_DOMAIN: usize = 10_000;

pub fn register_domain(core: &mut Core, input: &Value) -> SwfResult<Value> {
    let name = req_str(input, "name")?;
    if core.domains.contains_key(name) {
        return Err(SwfError::new(Fault::DomainAlreadyExists, name.to_owned()));
    }
    if core.domains.len() >= MAX_DOMAINS {
        return Err(SwfError::new(
            Fault::LimitExceeded,
            format!(
                "There are already {MAX_DOMAINS} domains (registered or deprecated), SWF's maximum"
            ),
        ));
    }
    let retention = req_str(input, "workflowExecutionRetentionPeriodInDays")?;
    if parse_duration(retention, "workflowExecutionRetentionPeriodInDays")?
        .is_some_and(|days| days > MAX_RETENTION_DAYS)
    {
        return Err(SwfError::new(
            Fault::LimitExceeded,
            format!(
                "workflowExecutionRetentionPeriodInDays {retention}: the maximum workflow execution retention period is {MAX_RETENTION_DAYS} days"
            ),
        ));
    }
    let mut tags = BTreeMap::new();
    add_tags(&mut tags, input)?;
    core.domains.insert(
        name.to_owned(),
        Domain {
            name: name.to_owned(),
            description: get_str(input, "description").map(str::to_owned),
            status: Status::Registered,
            open_executions: 0,
            retention: retention.to_owned(),
            activity_types: HashMap::new(),
            workflow_types: HashMap::new(),
            tags,
        },
    );
    Ok(json!({}))
}

/// The ARN of domain `name`, as DescribeDomain and ListDomains show it.
fn domain_arn(name: &str) -> String {
    format!("arn:aws:swf:us-east-1:000000000000:/domain/{name}")
}

/// The domain a `resourceArn` names (domains are the only resources SWF tags).
fn tagged_domain<'c>(core: &'c mut Core, input: &Value) -> SwfResult<&'c mut Domain> {
    let arn = req_str(input, "resourceArn")?;
    let unknown = || SwfError::unknown(format!("Unknown resource: {arn}"));
    let name = arn
        .strip_prefix("arn:aws:swf:")
        .and_then(|rest| rest.split_once(":/domain/"))
        .map(|(_, name)| name)
        .ok_or_else(unknown)?;
    core.domains.get_mut(name).ok_or_else(unknown)
}

/// Adds or replaces the request's `tags`; more than [`MAX_TAGS`] in all is refused whole.
fn add_tags(tags: &mut BTreeMap<String, String>, input: &Value) -> SwfResult<()> {
    let given = input.get("tags").and_then(Value::as_array);
    let mut merged = tags.clone();
    for t in given.into_iter().flatten() {
        let key = get_str(t, "key").unwrap_or_default();
        merged.insert(key.to_owned(), get_str(t, "value").unwrap_or("").to_owned());
    }
    if merged.len() > MAX_TAGS {
        return Err(SwfError::new(
            Fault::TooManyTags,
            format!(
                "A resource may have at most {MAX_TAGS} tags; this would make {}",
                merged.len()
            ),
        ));
    }
    *tags = merged;
    Ok(())
}

pub fn tag_resource(core: &mut Core, input: &Value) -> SwfResult<Value> {
    add_tags(&mut tagged_domain(core, input)?.tags, input)?;
    Ok(json!({}))
}

pub fn untag_resource(core: &mut Core, input: &Value) -> SwfResult<Value> {
    let d = tagged_domain(core, input)?;
    for key in input["tagKeys"].as_array().into_iter().flatten() {
        if let Some(key) = key.as_str() {
            d.tags.remove(key);
        }
    }
    Ok(json!({}))
}

pub fn list_tags_for_resource(core: &mut Core, input: &Value) -> SwfResult<Value> {
    let d = tagged_domain(core, input)?;
    let tags: Vec<Value> = d
        .tags
        .iter()
        .map(|(k, v)| json!({"key": k, "value": v}))
        .collect();
    Ok(json!({"tags": tags}))
}

fn domain_info(d: &Domain) -> Value {
    let mut v = json!({"name": d.name, "status": d.status.as_str(), "arn": domain_arn(&d.name)});
    if let Some(desc) = &d.description {
        v["description"] = json!(desc);
    }
    v
}

pub fn describe_domain(core: &mut Core, input: &Value) -> SwfResult<Value> {
    let d = core.domain(req_str(input, "name")?)?;
    Ok(json!({
        "domainInfo": domain_info(d),
        "configuration": {"workflowExecutionRetentionPeriodInDays": d.retention},
    }))
}

pub fn list_domains(core: &mut Core, input: &Value) -> SwfResult<Value> {
    let status = req_str(input, "registrationStatus")?;
    list_page(core, "ListDomains", "domainInfos", input, |core| {
        let mut domains: Vec<&Domain> = core
            .domains
            .values()
            .filter(|d| d.status.as_str() == status)
            .collect();
        domains.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(domains.into_iter().map(domain_info).collect())
    })
}

/// DeprecateDomain / UndeprecateDomain. Deprecating also deprecates every type registered in
/// the domain (SWF's DeprecateDomain docs); its open executions go on. Undeprecating leaves
/// the types deprecated: SWF's UndeprecateDomain docs say nothing of them, and
/// Undeprecate*Type brings each back.
pub fn set_domain_status(core: &mut Core, input: &Value, to: Status) -> SwfResult<Value> {
    let name = req_str(input, "name")?;
    let d = core.domain_mut(name)?;
    if d.status == to {
        return Err(match to {
            Status::Deprecated => SwfError::new(
                Fault::DomainDeprecated,
                format!("Domain already deprecated: {name}"),
            ),
            Status::Registered => SwfError::new(
                Fault::DomainAlreadyExists,
                format!("Domain is not deprecated: {name}"),
            ),
        });
    }
    d.status = to;
    if to == Status::Deprecated {
        let now = now_ts();
        for t in d
            .activity_types
            .values_mut()
            .chain(d.workflow_types.values_mut())
            .filter(|t| t.status == Status::Registered)
        {
            t.status = Status::Deprecated;
            t.deprecated = Some(now);
        }
    }
    Ok(json!({}))
}

/// Activity types or workflow types: the operations are the same for both.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Activity,
    Workflow,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Activity => "ActivityType",
            Kind::Workflow => "WorkflowType",
        }
    }

    fn member(self) -> &'static str {
        match self {
            Kind::Activity => "activityType",
            Kind::Workflow => "workflowType",
        }
    }

    fn of(self, d: &Domain) -> &HashMap<(String, String), TypeRec> {
        match self {
            Kind::Activity => &d.activity_types,
            Kind::Workflow => &d.workflow_types,
        }
    }

    fn of_mut(self, d: &mut Domain) -> &mut HashMap<(String, String), TypeRec> {
        match self {
            Kind::Activity => &mut d.activity_types,
            Kind::Workflow => &mut d.workflow_types,
        }
    }
}

fn unknown_type(kind: Kind, name: &str, version: &str) -> SwfError {
    SwfError::unknown(format!(
        "Unknown type: {}=[name={name}, version={version}]",
        kind.label()
    ))
}

fn type_key(v: &Value) -> SwfResult<(String, String)> {
    Ok((
        req_str(v, "name")?.to_owned(),
        req_str(v, "version")?.to_owned(),
    ))
}

pub fn register_type(core: &mut Core, input: &Value, kind: Kind) -> SwfResult<Value> {
    let key = type_key(input)?;
    if kind == Kind::Workflow {
        if let Some(v) = get_str(input, "defaultExecutionStartToCloseTimeout") {
            check_execution_timeout(v, "defaultExecutionStartToCloseTimeout", false)?;
        }
        if let Some(v) = get_str(input, "defaultTaskStartToCloseTimeout") {
            check_decision_task_timeout(v, "defaultTaskStartToCloseTimeout")?;
        }
    }
    if kind == Kind::Activity {
        for key in [
            "defaultTaskScheduleToStartTimeout",
            "defaultTaskScheduleToCloseTimeout",
            "defaultTaskStartToCloseTimeout",
            "defaultTaskHeartbeatTimeout",
        ] {
            if let Some(v) = get_str(input, key) {
                check_activity_timeout(v, key)?;
            }
        }
    }
    let d = core.domain_mut(req_str(input, "domain")?)?;
    // "No longer available for this operation": UnknownResourceFault is among
    // Register*Type's faults, DomainDeprecatedFault is not (SDKs would not recognise it).
    if d.status == Status::Deprecated {
        return Err(SwfError::unknown(format!(
            "Domain is deprecated, no types can be registered in it: {}",
            d.name
        )));
    }
    if kind.of(d).contains_key(&key) {
        return Err(SwfError::new(
            Fault::TypeAlreadyExists,
            format!("{}=[name={}, version={}]", kind.label(), key.0, key.1),
        ));
    }
    if kind.of(d).len() >= MAX_TYPES_PER_DOMAIN {
        return Err(SwfError::new(
            Fault::LimitExceeded,
            format!(
                "Domain {} already has {MAX_TYPES_PER_DOMAIN} {}s (registered or deprecated): delete one first",
                d.name,
                kind.label()
            ),
        ));
    }
    let config: Map<String, Value> = input
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| k.starts_with("default"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let rec = TypeRec {
        name: key.0.clone(),
        version: key.1.clone(),
        status: Status::Registered,
        description: get_str(input, "description").map(str::to_owned),
        created: now_ts(),
        deprecated: None,
        config,
    };
    kind.of_mut(d).insert(key, rec);
    Ok(json!({}))
}

fn type_info(kind: Kind, t: &TypeRec) -> Value {
    let mut v = json!({
        kind.member(): {"name": t.name, "version": t.version},
        "status": t.status.as_str(),
        "creationDate": t.created,
    });
    if let Some(d) = &t.description {
        v["description"] = json!(d);
    }
    if let Some(d) = t.deprecated {
        v["deprecationDate"] = json!(d);
    }
    v
}

pub fn describe_type(core: &mut Core, input: &Value, kind: Kind) -> SwfResult<Value> {
    let d = core.domain(req_str(input, "domain")?)?;
    let key = type_key(&input[kind.member()])?;
    let t = kind
        .of(d)
        .get(&key)
        .ok_or_else(|| unknown_type(kind, &key.0, &key.1))?;
    Ok(json!({"typeInfo": type_info(kind, t), "configuration": t.config}))
}

pub fn list_types(core: &mut Core, input: &Value, kind: Kind) -> SwfResult<Value> {
    let domain = req_str(input, "domain")?;
    let status = req_str(input, "registrationStatus")?;
    let name = get_str(input, "name");
    let op = match kind {
        Kind::Activity => "ListActivityTypes",
        Kind::Workflow => "ListWorkflowTypes",
    };
    list_page(core, op, "typeInfos", input, |core| {
        let mut types: Vec<&TypeRec> = kind
            .of(core.domain(domain)?)
            .values()
            .filter(|t| t.status.as_str() == status && name.is_none_or(|n| n == t.name))
            .collect();
        types.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
        Ok(types.into_iter().map(|t| type_info(kind, t)).collect())
    })
}

pub fn set_type_status(core: &mut Core, input: &Value, kind: Kind, to: Status) -> SwfResult<Value> {
    let key = type_key(&input[kind.member()])?;
    let d = core.domain_mut(req_str(input, "domain")?)?;
    let t = kind
        .of_mut(d)
        .get_mut(&key)
        .ok_or_else(|| unknown_type(kind, &key.0, &key.1))?;
    if t.status == to {
        let what = format!("{}=[name={}, version={}]", kind.label(), key.0, key.1);
        return Err(match to {
            Status::Deprecated => SwfError::new(Fault::TypeDeprecated, what),
            Status::Registered => SwfError::new(Fault::TypeAlreadyExists, what),
        });
    }
    t.status = to;
    t.deprecated = (to == Status::Deprecated).then(now_ts);
    Ok(json!({}))
}

pub fn delete_type(core: &mut Core, input: &Value, kind: Kind) -> SwfResult<Value> {
    let key = type_key(&input[kind.member()])?;
    let d = core.domain_mut(req_str(input, "domain")?)?;
    let t = kind
        .of(d)
        .get(&key)
        .ok_or_else(|| unknown_type(kind, &key.0, &key.1))?;
    if t.status != Status::Deprecated {
        return Err(SwfError::new(
            Fault::TypeNotDeprecated,
            format!(
                "{}=[name={}, version={}] must be deprecated before it is deleted",
                kind.label(),
                key.0,
                key.1
            ),
        ));
    }
    kind.of_mut(d).remove(&key);
    Ok(json!({}))
}
