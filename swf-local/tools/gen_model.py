"""Extracts the validation-relevant part of botocore's SWF service model into
src/service-model.json (shapes without documentation, plus which members carry SWF's
name rule). Rerun after a botocore upgrade: python3 tools/gen_model.py"""
import gzip, json, os
import botocore

path = os.path.join(os.path.dirname(botocore.__file__), "data/swf/2012-01-25/service-2.json.gz")
model = json.load(gzip.open(path))
RULE = "must <i>not</i> be the literal string <code>arn</code>"
out = {"operations": {}, "shapes": {}}
for name, op in model["operations"].items():
    out["operations"][name] = op.get("input", {}).get("shape")
for name, shape in model["shapes"].items():
    s = {k: shape[k] for k in ("type", "required", "min", "max", "enum") if k in shape}
    if "members" in shape:
        s["members"] = {
            m: {"shape": v["shape"], **({"nameRule": True} if RULE in v.get("documentation", "") else {})}
            for m, v in shape["members"].items()
        }
    if "member" in shape:
        s["member"] = shape["member"]["shape"]
    out["shapes"][name] = s
here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "..", "src", "service-model.json"), "w") as f:
    json.dump(out, f, separators=(",", ":"), sort_keys=True)
    f.write("\n")
