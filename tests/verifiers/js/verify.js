// Verify one Sigstore bundle with sigstore-js (@sigstore/verify), an implementation we did
// not write: the way a Node.js consumer checks our attestations offline.
//
//   node verify.js BUNDLE --trusted-root ROOT --identity SAN --issuer ISSUER   (keyless)
//   node verify.js BUNDLE --trusted-root ROOT --key PUBLIC.pem                 (key mode)
//
// Keyless: the Fulcio chain, the SCT (1 CT log), the Rekor entry (1 tlog) and the policy
// (SAN and issuer extension) as sigstore-js checks them by default. Key mode: the bundle
// names its key by `publicKey.hint`; the key finder hands out the given key only for the
// hint that key has (hex SHA-256 of its PEM), and no tlog entry is required (key-mode
// bundles carry none). Prints one JSON line {signer, payloadType, statement}; exit 1 with
// the error on stderr when verification fails, 2 on bad usage.
"use strict";

const crypto = require("node:crypto");
const fs = require("node:fs");
const { bundleFromJSON } = require("@sigstore/bundle");
const { TrustedRoot } = require("@sigstore/protobuf-specs");
const { Verifier, toSignedEntity, toTrustMaterial } = require("@sigstore/verify");

function args(argv) {
  const out = { bundle: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a.startsWith("--")) out[a.slice(2)] = argv[++i];
    else out.bundle = a;
  }
  return out;
}

function main() {
  const opt = args(process.argv.slice(2));
  if (!opt.bundle || !opt["trusted-root"] || !(opt.key || (opt.identity && opt.issuer))) {
    process.stderr.write("usage: verify.js BUNDLE --trusted-root ROOT (--key PEM | --identity SAN --issuer ISSUER)\n");
    return 2;
  }
  const bundle = bundleFromJSON(JSON.parse(fs.readFileSync(opt.bundle, "utf8")));
  const root = TrustedRoot.fromJSON(JSON.parse(fs.readFileSync(opt["trusted-root"], "utf8")));
  let material;
  let verifier;
  let policy;
  if (opt.key) {
    const pem = fs.readFileSync(opt.key);
    const publicKey = crypto.createPublicKey(pem);
    const hint = crypto.createHash("sha256").update(publicKey.export({ type: "spki", format: "pem" })).digest("hex");
    material = toTrustMaterial(root, (wanted) => {
      if (wanted !== hint) throw new Error(`no key for hint ${wanted}`);
      return { publicKey, validFor: () => true };
    });
    verifier = new Verifier(material, { tlogThreshold: 0, ctlogThreshold: 0 });
  } else {
    material = toTrustMaterial(root);
    verifier = new Verifier(material);
    policy = { subjectAlternativeName: opt.identity, extensions: { issuer: opt.issuer } };
  }
  const signer = verifier.verify(toSignedEntity(bundle), policy);
  const env = bundle.content.dsseEnvelope;
  process.stdout.write(
    JSON.stringify({
      signer: signer.identity || null,
      payloadType: env.payloadType,
      statement: JSON.parse(env.payload.toString("utf8")),
    }) + "\n",
  );
  return 0;
}

try {
  process.exitCode = main();
} catch (err) {
  process.stderr.write(`sigstore-js: ${err.code || err.name}: ${err.message}\n`);
  process.exitCode = 1;
}
