//! SWF fault types and how they go on the wire (`__type` + `message`, HTTP 400 unless the
//! fault is a server-side one).

use serde_json::json;

/// The faults SWF clients branch on; each maps to the `__type` string SWF sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    UnknownResource,
    TypeAlreadyExists,
    DomainAlreadyExists,
    LimitExceeded,
    OperationNotPermitted,
    DefaultUndefined,
    TypeDeprecated,
    /// Delete*Type of a type that is still registered.
    TypeNotDeprecated,
    DomainDeprecated,
    WorkflowExecutionAlreadyStarted,
    /// More than 50 tags on one resource.
    TooManyTags,
    Validation,
    /// A body that cannot be deserialized: not JSON, not a JSON object, or a member whose
    /// JSON type is not its shape's (awsJson services answer these so, not with
    /// ValidationException).
    Serialization,
    Throttling,
    UnknownOperation,
    /// HTTP 500, only produced by fault injection.
    InternalFailure,
    /// HTTP 503, only produced by fault injection.
    ServiceUnavailable,
    /// The request's session token has expired (AWS's common error, any service); only
    /// produced by fault injection, since swf-local checks no credentials.
    ExpiredToken,
}

impl Fault {
    /// The `__type` SWF sends; aws-sdk-swf keeps the part after `#` as the error code.
    pub fn type_name(self) -> &'static str {
        match self {
            Fault::UnknownResource => "com.amazonaws.swf.base.model#UnknownResourceFault",
            Fault::TypeAlreadyExists => "com.amazonaws.swf.base.model#TypeAlreadyExistsFault",
            Fault::DomainAlreadyExists => "com.amazonaws.swf.base.model#DomainAlreadyExistsFault",
            Fault::LimitExceeded => "com.amazonaws.swf.base.model#LimitExceededFault",
            Fault::OperationNotPermitted => {
                "com.amazonaws.swf.base.model#OperationNotPermittedFault"
            }
            Fault::DefaultUndefined => "com.amazonaws.swf.base.model#DefaultUndefinedFault",
            Fault::TypeDeprecated => "com.amazonaws.swf.base.model#TypeDeprecatedFault",
            Fault::TypeNotDeprecated => "com.amazonaws.swf.base.model#TypeNotDeprecatedFault",
            Fault::DomainDeprecated => "com.amazonaws.swf.base.model#DomainDeprecatedFault",
            Fault::WorkflowExecutionAlreadyStarted => {
                "com.amazonaws.swf.base.model#WorkflowExecutionAlreadyStartedFault"
            }
            Fault::TooManyTags => "com.amazonaws.swf.base.model#TooManyTagsFault",
            Fault::Validation => "com.amazon.coral.validate#ValidationException",
            Fault::Serialization => "com.amazon.coral.service#SerializationException",
            Fault::Throttling => "com.amazon.coral.availability#ThrottlingException",
            Fault::UnknownOperation => "com.amazon.coral.service#UnknownOperationException",
            Fault::InternalFailure => "com.amazon.coral.service#InternalFailure",
            Fault::ServiceUnavailable => {
                "com.amazon.coral.availability#ServiceUnavailableException"
            }
            Fault::ExpiredToken => "com.amazon.coral.service#ExpiredTokenException",
        }
    }

    pub fn status(self) -> u16 {
        match self {
            Fault::InternalFailure => 500,
            Fault::ServiceUnavailable => 503,
            _ => 400,
        }
    }
}

/// An error answer of one SWF call.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}: {message}", kind.type_name())]
pub struct SwfError {
    pub kind: Fault,
    pub message: String,
}

impl SwfError {
    pub fn new(kind: Fault, message: impl Into<String>) -> Self {
        SwfError {
            kind,
            message: message.into(),
        }
    }

    pub fn unknown(message: impl Into<String>) -> Self {
        Self::new(Fault::UnknownResource, message)
    }

    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(Fault::Validation, message)
    }

    pub fn serialization(message: impl Into<String>) -> Self {
        Self::new(Fault::Serialization, message)
    }

    /// The JSON body SWF sends with the error.
    pub fn body(&self) -> Vec<u8> {
        serde_json::to_vec(&json!({"__type": self.kind.type_name(), "message": self.message}))
            .expect("a JSON object serialises")
    }
}

pub type SwfResult<T> = Result<T, SwfError>;
