"""The default release gate policy (Rego v1, package `release.gate`) and its unit tests,
shipped inside the package.

Data, not code: `release.gate.default_policy` opens it with `importlib.resources`. It is the
gate when `[gate].policy` is unset; an adopter's own directory replaces it (files in
package `release.gate`) or extends it (files in package `release.custom`: their `deny`
reasons are added). docs/policy.md says how.
"""
