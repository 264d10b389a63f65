# The release gate: may this digest be promoted? The DEFAULT policy, shipped in the tool
# (release/policy/) and used when `[gate].policy` is unset.
#
# `input` is the typed Evidence document (release/evidence.py) that `release verify`
# collected and re-verified for one digest. Every string in `deny` is a reason the
# promotion is refused; the digest is allowed only when there are none.
# Your own rules go in your repository, not here (docs/policy.md): files in package
# `release.custom` that define `deny` add reasons to these; files in package
# `release.gate` replace this policy (start from a copy of this file and its tests).
#
# The checks are functions of the document (`reasons(doc)`), so the unit tests call them
# with documents directly; every field of the Evidence is always present, so checks
# compare with `== true` / `== false`.
package release.gate

import rego.v1

# Attestations every release must carry, by the short names of release/evidence.py.
required_predicates := ["provenance", "sbom", "model", "canary"]

# The most findings of each severity a release may ship with (when a report is configured).
max_findings := {"critical": 0, "high": 0}

# Findings the team accepted, by id, with the reason (reviewed like code). A waived
# finding does not count against max_findings. Example:
#   waivers := {"CVE-2024-12345": "onnxruntime: the vulnerable op is not in our model"}
waivers := {}

deny := reasons(input) | custom_deny

# Reasons from the adopter's own policy directory (`[gate].policy`) when its files are in
# package `release.custom`: `deny contains msg if ...` there adds to the reasons here.
custom_deny contains msg if {
	some msg in data.release.custom.deny
}

default allow := false

allow if count(deny) == 0

reasons(doc) := ((((((signature_reasons(doc) | sbom_reasons(doc)) | provenance_reasons(doc)) | model_reasons(doc)) | canary_reasons(doc)) | vulnerability_reasons(doc)) | readiness_reasons(doc)) | chain_reasons(doc)

# --- signatures and signers ------------------------------------------------------------
signature_reasons(doc) := {msg |
	some name in required_predicates
	sig := object.get(doc.signatures, name, {"present": false})
	sig.present == false
	msg := sprintf("%s attestation: missing", [name])
} | {msg |
	some name in required_predicates
	sig := object.get(doc.signatures, name, {"present": false})
	sig.present == true
	sig.ok == false
	msg := sprintf("%s attestation: %s", [name, sig.reason])
}

# --- SBOM ----------------------------------------------------------------------------
sbom_reasons(doc) := {msg |
	doc.sbom.present == false
	msg := "sbom: missing"
} | {msg |
	doc.sbom.present == true
	doc.sbom.subject_ok == false
	msg := sprintf("sbom: subject is not this image (%s)", [doc.sbom.reason])
} | {msg |
	doc.sbom.present == true
	doc.sbom.subject_ok == true
	doc.sbom.model_files_match_lock == false
	msg := sprintf("sbom: model files do not match the lock (%s)", [doc.sbom.reason])
} | {msg |
	doc.sbom.present == true
	doc.sbom.subject_ok == true
	doc.sbom.model_files_match_lock == true
	doc.sbom.ok == false
	msg := sprintf("sbom: %s", [doc.sbom.reason])
}

# --- provenance ----------------------------------------------------------------------
provenance_reasons(doc) := {msg |
	doc.provenance.ok == false
	msg := sprintf("provenance: %s", [doc.provenance.reason])
} | {msg |
	is_string(doc.provenance.expected_workflow)
	doc.provenance.workflow != doc.provenance.expected_workflow
	msg := sprintf("provenance: built by %v, expected %v", [doc.provenance.workflow, doc.provenance.expected_workflow])
} | {msg |
	is_string(doc.provenance.expected_commit)
	doc.provenance.commit != doc.provenance.expected_commit
	msg := sprintf("provenance: built from commit %v, expected %v", [doc.provenance.commit, doc.provenance.expected_commit])
}

# --- the model layer -----------------------------------------------------------------
model_reasons(doc) := {msg |
	doc.model_layer.ok == false
	msg := sprintf("model layer: does not match the lock (%s)", [doc.model_layer.reason])
}

# --- canary --------------------------------------------------------------------------
canary_reasons(doc) := {msg |
	doc.canary.passed == false
	msg := sprintf("canary: failed (%s)", [doc.canary.reason])
} | {msg |
	doc.canary.passed == true
	doc.canary.ok == false
	msg := sprintf("canary: %s", [doc.canary.reason])
}

# --- vulnerabilities -----------------------------------------------------------------
vulnerability_reasons(doc) := {msg |
	doc.vulnerabilities.configured == true
	doc.vulnerabilities.ok == false
	msg := sprintf("vulnerabilities: %s", [doc.vulnerabilities.reason])
} | {msg |
	doc.vulnerabilities.configured == true
	some severity
	limit := max_findings[severity]
	n := unwaived(doc.vulnerabilities, severity)
	n > limit
	head := sprintf("vulnerabilities: %d %s findings (at most %d allowed)", [n, severity, limit])
	msg := concat("", [head, listed(unwaived_ids(doc.vulnerabilities, severity))])
}

# (concat, not sprintf: regopy quotes a computed string given to %s)
listed(ids) := concat("", [": ", concat(", ", ids)]) if {
	count(ids) > 0
} else := ""

# Findings of a severity not waived: from the listed findings when there are any,
# else the report's count.
unwaived(v, severity) := count(unwaived_ids(v, severity)) if {
	count(object.get(v, "findings", [])) > 0
} else := v[severity]

unwaived_ids(v, severity) := sort([f.id |
	some f in object.get(v, "findings", [])
	f.severity == severity
	not waivers[f.id]
])

# --- readiness of the environment ----------------------------------------------------
# Filled in by the gate when release.toml has `[readiness] gate = true` (off by default:
# `configured` is false and nothing is required). Each failing required row of
# `release readiness` is a reason.
readiness_reasons(doc) := {msg |
	r := object.get(doc, "readiness", {"configured": false})
	r.configured == true
	r.ok == false
	count(object.get(r, "failed", [])) == 0
	msg := sprintf("readiness: %s", [r.reason])
} | {msg |
	r := object.get(doc, "readiness", {"configured": false})
	r.configured == true
	r.ok == false
	some row in object.get(r, "failed", [])
	msg := concat("", ["readiness: ", row])
}

# --- the environment chain -------------------------------------------------------------
# Filled in by the gate when `[environments.ENV].after` names the environment a digest
# must pass through first (and `soak` how long it must stay live there). The digest must
# have a verified promotion statement to `after` at least `soak` ago, no rollback of it
# there since, and the alarms of `after` never in ALARM since. Each failing part is a
# reason; the soak is compared here, the time left formatted by the gate.
chain_reasons(doc) := {msg |
	c := object.get(doc, "chain", {"configured": false})
	c.configured == true
	some part in ["promotion", "rollback", "alarms"]
	c[part].ok == false
	c.promotion.ok == true
	msg := c[part].reason
} | {msg |
	c := object.get(doc, "chain", {"configured": false})
	c.configured == true
	c.promotion.ok == false
	msg := c.promotion.reason
} | {msg |
	c := object.get(doc, "chain", {"configured": false})
	c.configured == true
	c.promotion.ok == true
	c.soaked_seconds < c.soak_seconds
	c.left != ""
	msg := concat("", [doc.env, " requires ", doc.digest, " soaked in ", c.after, " for ", c.soak, ": ", c.left, " left"])
} | {msg |
	c := object.get(doc, "chain", {"configured": false})
	c.configured == true
	c.promotion.ok == true
	c.soaked_seconds < c.soak_seconds
	c.left == ""
	msg := c.soaked.reason
}
