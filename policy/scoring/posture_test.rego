# Unit tests of the posture scoring policy, run by pytest through regopy
# (tests/handlers/test_scoring_policy.py) and by `opa test policy/scoring`. Each test calls
# `posture.evaluate(doc)` with its own document.
package scoring.posture_test

import rego.v1

import data.scoring.posture

clean_account := {
	"id": "111111111111",
	"root_mfa_enabled": true,
	"cloudtrail_enabled": true,
	"guardduty_enabled": true,
	"ebs_default_encryption": true,
	"public_s3_buckets": [],
}

clean_controls := {"password_policy": {"min_length": 16}, "sso_enforced": true, "incident_response_plan": true}

clean := {"posture": {"accounts": [clean_account], "controls": clean_controls, "findings": []}}

rules(r) := {f.rule | some f in r.findings}

test_clean_posture_scores_100_grade_a if {
	r := posture.evaluate(clean)
	r.score == 100
	r.grade == "A"
	count(r.findings) == 0
	r.news_score == null
}

test_root_without_mfa_is_critical_and_caps_grade if {
	acct := object.union(clean_account, {"root_mfa_enabled": false})
	r := posture.evaluate({"posture": {"accounts": [acct], "controls": clean_controls, "findings": []}})
	rules(r) == {"root-mfa-disabled"}
	r.score == 80
	r.grade == "C"
}

test_each_public_bucket_is_a_finding if {
	acct := object.union(clean_account, {"public_s3_buckets": ["a", "b"]})
	r := posture.evaluate({"posture": {"accounts": [acct], "controls": clean_controls, "findings": []}})
	count(r.findings) == 2
	r.score == 80
}

test_missing_controls_are_findings if {
	r := posture.evaluate({"posture": {"accounts": [clean_account], "controls": {}, "findings": []}})
	rules(r) == {"weak-password-policy", "sso-not-enforced", "no-incident-response-plan"}
	r.score == 91
}

test_resolved_reported_findings_do_not_count if {
	fs := [
		{"id": "F-1", "severity": "high", "status": "ACTIVE", "title": "open port"},
		{"id": "F-2", "severity": "CRITICAL", "status": "RESOLVED", "title": "old"},
	]
	r := posture.evaluate({"posture": {"accounts": [clean_account], "controls": clean_controls, "findings": fs}})
	r.score == 92
	rules(r) == {"reported-finding"}
}

test_score_never_below_zero if {
	acct := {"id": "2", "public_s3_buckets": ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"]}
	r := posture.evaluate({"posture": {"accounts": [acct], "controls": {}, "findings": []}})
	r.score == 0
	r.grade == "F"
}

test_news_sentiment_weighted if {
	inp := object.union(clean, {"sentiment": {"count": 10, "positive": 0, "negative": 10}, "weights": {"sentiment": 0.2}})
	r := posture.evaluate(inp)
	r.posture_score == 100
	r.news_score == 0
	r.score == 80
	r.grade == "B"
}

test_no_news_means_posture_only if {
	inp := object.union(clean, {"sentiment": {"count": 0, "positive": 0, "negative": 0}})
	r := posture.evaluate(inp)
	r.score == 100
}
