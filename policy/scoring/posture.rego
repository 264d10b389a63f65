# Security posture scoring of an acquired company (used by handlers/scorer.py via regopy).
#
# input := {
#   "posture": {"accounts": [...], "controls": {...}, "findings": [...]},
#   "sentiment": {"count": N, "positive": P, "negative": Q},   # recent news analysis
#   "weights": {"sentiment": W}                                # 0..1, default 0.1
# }
# result := {"score": 0..100, "posture_score": 0..100, "news_score": 0..100 | null,
#            "grade": "A".."F", "findings": [...]}
#
# Every finding: {"rule", "severity", "penalty", "resource", "title"}. The rule ids are the
# keys of the remediator's action catalog (handlers/remediator.py).
# posture_score = max(0, 100 - sum of penalties)
# news_score    = 100 * positive / count            (only when count > 0)
# score         = round((1 - W) * posture_score + W * news_score), or posture_score
#                 when there is no news. A CRITICAL finding caps the grade at C.
package scoring.posture

import rego.v1

severity_penalty := {"CRITICAL": 15, "HIGH": 8, "MEDIUM": 3, "LOW": 1, "INFO": 0}

min_password_length := 14

# The scoring is a function of the document (so the unit tests call it with their own
# documents; regopy does not support `with input as`). `result` applies it to the input.
result := evaluate(input)

_posture(doc) := object.get(doc, "posture", {})

_accounts(doc) := object.get(_posture(doc), "accounts", [])

_controls(doc) := object.get(_posture(doc), "controls", {})

_finding(rule, severity, penalty, resource, title) := {
	"rule": rule, "severity": severity, "penalty": penalty, "resource": resource, "title": title,
}

account_findings(doc) := {f |
	some a in _accounts(doc)
	some [key, rule, severity, penalty, title] in [
		["root_mfa_enabled", "root-mfa-disabled", "CRITICAL", 20, "root user has no MFA"],
		["cloudtrail_enabled", "cloudtrail-disabled", "HIGH", 10, "CloudTrail is not enabled"],
		["guardduty_enabled", "guardduty-disabled", "MEDIUM", 5, "GuardDuty is not enabled"],
		["ebs_default_encryption", "ebs-encryption-disabled", "MEDIUM", 5, "EBS default encryption is off"],
	]
	object.get(a, key, false) != true
	f := _finding(rule, severity, penalty, object.get(a, "id", "unknown"), title)
}

bucket_findings(doc) := {f |
	some a in _accounts(doc)
	some b in object.get(a, "public_s3_buckets", [])
	f := _finding("s3-public-bucket", "HIGH", 10, b, "S3 bucket allows public access")
}

control_findings(doc) := {f |
	c := _controls(doc)
	some [ok, rule, severity, penalty, title] in [
		[
			object.get(object.get(c, "password_policy", {}), "min_length", 0) >= min_password_length,
			"weak-password-policy", "MEDIUM", 5, "password policy shorter than 14 characters",
		],
		[object.get(c, "sso_enforced", false) == true, "sso-not-enforced", "LOW", 2, "single sign-on is not enforced"],
		[object.get(c, "incident_response_plan", false) == true, "no-incident-response-plan", "LOW", 2, "no incident response plan"],
	]
	ok == false
	f := _finding(rule, severity, penalty, "organization", title)
}

reported_findings(doc) := {f |
	some r in object.get(_posture(doc), "findings", [])
	upper(object.get(r, "status", "ACTIVE")) == "ACTIVE"
	sev := upper(object.get(r, "severity", "MEDIUM"))
	p := severity_penalty[sev]
	f := _finding("reported-finding", sev, p, object.get(r, "id", "unknown"), object.get(r, "title", "reported finding"))
}

findings(doc) := ((account_findings(doc) | bucket_findings(doc)) | control_findings(doc)) | reported_findings(doc)

clamp(x) := 0 if x < 0
else := 100 if x > 100
else := x

letter(score) := "A" if score >= 90
else := "B" if score >= 80
else := "C" if score >= 70
else := "D" if score >= 60
else := "F"

capped(l, fs) := "C" if {
	l in {"A", "B"}
	some f in fs
	f.severity == "CRITICAL"
} else := l

news_score(s) := (100 * object.get(s, "positive", 0)) / object.get(s, "count", 0) if {
	object.get(s, "count", 0) > 0
} else := null

combined(posture_score, news, w) := posture_score if news == null
else := round(((1 - w) * posture_score) + (w * news))

evaluate(doc) := out if {
	fs := findings(doc)
	ps := clamp(100 - sum([f.penalty | some f in fs]))
	news := news_score(object.get(doc, "sentiment", {}))
	w := object.get(object.get(doc, "weights", {}), "sentiment", 0.1)
	score := combined(ps, news, w)
	out := {
		"score": score,
		"posture_score": ps,
		"news_score": news,
		"grade": capped(letter(score), fs),
		"findings": fs,
	}
}
