# Unit tests of the release gate, run by pytest through regopy
# (tests/deploy/test_policy.py) and by `opa test policy/release`.
# Each test names the one thing wrong with an otherwise good release and calls the
# policy's `reasons(doc)` with that document.
package release.gate_test

import rego.v1

import data.release.gate

sig(name) := {
	"ok": true, "reason": "", "present": true,
	"predicate_type": name,
	"signer": "https://github.com/org/repo/.github/workflows/release.yml@refs/heads/main",
	"issuer": "https://token.actions.githubusercontent.com",
	"bundle_digest": null,
}

good := {
	"schema_version": 1,
	"digest": "sha256:1111111111111111111111111111111111111111111111111111111111111111",
	"repository": "registry/app",
	"env": "prod",
	"signatures": {
		"provenance": sig("https://slsa.dev/provenance/v1"),
		"sbom": sig("https://cyclonedx.org/bom"),
		"model": sig("https://model_signing/signature/v1.0"),
		"canary": sig("https://github.com/release-platform/release/attestations/canary-report/v1"),
	},
	"sbom": {"ok": true, "reason": "", "present": true, "subject_ok": true, "model_files_match_lock": true},
	"provenance": {
		"ok": true, "reason": "",
		"workflow": ".github/workflows/release.yml", "expected_workflow": ".github/workflows/release.yml",
		"commit": "abc", "expected_commit": "abc",
	},
	"model_layer": {"ok": true, "reason": "", "lock_digest": null, "missing": [], "changed": [], "extra": []},
	"canary": {"ok": true, "reason": "", "passed": true, "report_digest": null, "failed_checks": []},
	"vulnerabilities": {"ok": true, "reason": "", "configured": false, "source": null, "critical": 0, "high": 0, "medium": 0, "low": 0},
}

with_field(section, patch) := object.union(good, {section: object.union(good[section], patch)})

test_good_release_has_no_reasons if {
	count(gate.reasons(good)) == 0
}

test_unsigned_is_denied if {
	doc := object.union(good, {"signatures": object.remove(good.signatures, ["provenance"])})
	"provenance attestation: missing" in gate.reasons(doc)
}

test_wrong_identity_is_denied if {
	bad := object.union(sig("https://slsa.dev/provenance/v1"), {"ok": false, "reason": "signed by https://evil.example/wf, expected the release workflow"})
	doc := object.union(good, {"signatures": object.union(good.signatures, {"provenance": bad})})
	"provenance attestation: signed by https://evil.example/wf, expected the release workflow" in gate.reasons(doc)
}

test_sbom_missing_is_denied if {
	doc := with_field("sbom", {"ok": false, "present": false, "reason": "no SBOM stored"})
	"sbom: missing" in gate.reasons(doc)
}

test_sbom_model_mismatch_is_denied if {
	doc := with_field("sbom", {"ok": false, "model_files_match_lock": false, "reason": "onnx/model.onnx sha256 differs"})
	"sbom: model files do not match the lock (onnx/model.onnx sha256 differs)" in gate.reasons(doc)
}

test_model_layer_mismatch_is_denied if {
	doc := with_field("model_layer", {"ok": false, "reason": "changed: onnx/model.onnx"})
	"model layer: does not match the lock (changed: onnx/model.onnx)" in gate.reasons(doc)
}

test_canary_failed_is_denied if {
	doc := with_field("canary", {"ok": false, "passed": false, "reason": "flip rate 0.12 > 0.05"})
	"canary: failed (flip rate 0.12 > 0.05)" in gate.reasons(doc)
}

test_wrong_workflow_is_denied if {
	doc := with_field("provenance", {"workflow": ".github/workflows/other.yml"})
	"provenance: built by .github/workflows/other.yml, expected .github/workflows/release.yml" in gate.reasons(doc)
}

test_wrong_commit_is_denied if {
	doc := with_field("provenance", {"commit": "def"})
	"provenance: built from commit def, expected abc" in gate.reasons(doc)
}

test_critical_vulnerability_is_denied if {
	doc := with_field("vulnerabilities", {"configured": true, "critical": 2})
	"vulnerabilities: 2 critical findings (at most 0 allowed)" in gate.reasons(doc)
}

crit(id) := {"id": id, "severity": "critical", "package": "pkg"}

test_listed_critical_findings_are_named if {
	doc := with_field("vulnerabilities", {"configured": true, "critical": 2, "findings": [crit("CVE-2"), crit("CVE-1")]})
	"vulnerabilities: 2 critical findings (at most 0 allowed): CVE-1, CVE-2" in gate.reasons(doc)
}

test_waived_critical_finding_is_allowed if {
	doc := with_field("vulnerabilities", {"configured": true, "critical": 1, "findings": [crit("CVE-1")]})
	count(gate.reasons(doc)) == 0 with data.release.gate.waivers as {"CVE-1": "not reachable"}
}

test_waiver_covers_only_its_own_id if {
	doc := with_field("vulnerabilities", {"configured": true, "critical": 2, "findings": [crit("CVE-1"), crit("CVE-2")]})
	"vulnerabilities: 1 critical findings (at most 0 allowed): CVE-2" in gate.reasons(doc) with data.release.gate.waivers as {"CVE-1": "not reachable"}
}

test_medium_findings_are_allowed if {
	doc := with_field("vulnerabilities", {"configured": true, "medium": 1, "findings": [{"id": "CVE-3", "severity": "medium", "package": null}]})
	count(gate.reasons(doc)) == 0
}

test_findings_ignored_when_no_report_is_configured if {
	doc := with_field("vulnerabilities", {"configured": false, "critical": 2})
	count(gate.reasons(doc)) == 0
}

test_every_reason_is_reported if {
	doc := object.union(with_field("canary", {"ok": false, "passed": false, "reason": "x"}), {"sbom": object.union(good.sbom, {"present": false})})
	reasons := gate.reasons(doc)
	count(reasons) == 2
}

# --- readiness -----------------------------------------------------------------------
not_ready := {"ok": false, "reason": "2 required rows fail", "configured": true, "failed": [
	"tracing:svc-classify: X-Ray tracing PassThrough",
	"redrive:findings: no redrive policy: a message that keeps failing is lost",
]}

test_readiness_not_required_unless_configured if {
	doc := object.union(good, {"readiness": object.union(not_ready, {"configured": false})})
	count(gate.reasons(doc)) == 0
}

test_readiness_absent_is_not_required if {
	count(gate.reasons(object.remove(good, ["readiness"]))) == 0
}

test_unready_environment_is_denied_with_every_row if {
	doc := object.union(good, {"readiness": not_ready})
	gate.reasons(doc) == {
		"readiness: tracing:svc-classify: X-Ray tracing PassThrough",
		"readiness: redrive:findings: no redrive policy: a message that keeps failing is lost",
	}
}

test_unready_without_rows_is_denied_with_the_reason if {
	doc := object.union(good, {"readiness": {"ok": false, "reason": "not checked", "configured": true, "failed": []}})
	gate.reasons(doc) == {"readiness: not checked"}
}

test_ready_environment_is_allowed if {
	doc := object.union(good, {"readiness": {"ok": true, "reason": "", "configured": true, "failed": []}})
	count(gate.reasons(doc)) == 0
}

# --- the environment chain ---------------------------------------------------------------
ok_claim := {"ok": true, "reason": ""}

soaked_chain := {
	"ok": true, "reason": "", "configured": true, "after": "staging",
	"soak": "24h", "soak_seconds": 86400, "soaked_seconds": 90000, "left": "",
	"promoted_at": "2026-01-01T00:00:00Z", "statement": null,
	"promotion": ok_claim, "soaked": ok_claim, "rollback": ok_claim, "alarms": ok_claim,
}

with_chain(patch) := object.union(good, {"chain": object.union(soaked_chain, patch)})

test_chain_soaked_is_allowed if {
	count(gate.reasons(with_chain({}))) == 0
}

test_chain_absent_or_not_configured_is_not_required if {
	count(gate.reasons(object.remove(good, ["chain"]))) == 0
	doc := with_chain({"configured": false, "soaked_seconds": 0, "promotion": {"ok": false, "reason": "x"}})
	count(gate.reasons(doc)) == 0
}

test_chain_too_early_is_denied_with_the_time_left if {
	doc := with_chain({"ok": false, "soaked_seconds": 67680, "left": "5h12m", "soaked": {"ok": false, "reason": "r"}})
	gate.reasons(doc) == {"prod requires sha256:1111111111111111111111111111111111111111111111111111111111111111 soaked in staging for 24h: 5h12m left"}
}

test_chain_replaced_before_the_soak_gives_its_reason if {
	doc := with_chain({"ok": false, "soaked_seconds": 3600, "left": "", "soaked": {"ok": false, "reason": "it was live there 1h"}})
	gate.reasons(doc) == {"it was live there 1h"}
}

test_chain_without_a_promotion_is_denied_once if {
	no := {"ok": false, "reason": "not checked"}
	doc := with_chain({"ok": false, "soaked_seconds": 0, "promotion": {"ok": false, "reason": "no verified promotion statement"}, "soaked": no, "rollback": no, "alarms": no})
	gate.reasons(doc) == {"no verified promotion statement"}
}

test_chain_rollback_is_denied if {
	doc := with_chain({"ok": false, "rollback": {"ok": false, "reason": "rolled back there"}})
	gate.reasons(doc) == {"rolled back there"}
}

test_chain_alarm_is_denied if {
	doc := with_chain({"ok": false, "alarms": {"ok": false, "reason": "svc-errors went to ALARM"}})
	gate.reasons(doc) == {"svc-errors went to ALARM"}
}
