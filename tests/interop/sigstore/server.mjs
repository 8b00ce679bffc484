// A local Sigstore for qsafe's keyless tests: @sigstore/mock's Fulcio CA (with its CT log) and Rekor v1, served
// over HTTP on 127.0.0.1, behind the three adapters sigstore-python needs (the mock is written for sigstore-js):
//   1. Fulcio: sigstore-python sends the OIDC token as an `Authorization: Bearer` header and the CSR as
//      base64(PEM); the mock reads the token from the JSON body and wants the PEM itself.
//   2. Rekor: real Rekor stores a *canonicalised* dsse/0.0.1 entry (envelopeHash, payloadHash, signatures with
//      their verifier), not the proposal (proposedContent) the client sends; the mock would log the proposal.
//   3. No timestamp authority: the mock's TSA answers JSON, sigstore-python sends DER RFC 3161 requests, so the
//      signing config lists none (Rekor v1's signed integrated time is the verified time).
//
//   node server.mjs OUT_DIR
// Listens on a free loopback port, writes OUT_DIR/trust_config.json (a ClientTrustConfig: trusted root +
// signing config pointing here), prints one JSON line {"port": N, "trust_config": PATH} and serves until killed.
import crypto from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import {
  fulcioHandler, initializeCA, initializeCTLog, initializeTLog, rekorHandler,
} from "@sigstore/mock";

const generateKeyPair = () => crypto.generateKeyPairSync("ec", { namedCurve: "prime256v1" });
const b64 = (buf) => Buffer.from(buf).toString("base64");
const sha256 = (buf) => crypto.createHash("sha256").update(buf).digest();
const START = "2020-01-01T00:00:00Z";

// 1. Fulcio adapter.
function fulcioRequest(body, headers) {
  const request = JSON.parse(body);
  const auth = headers.authorization || "";
  if (!auth.startsWith("Bearer ")) throw new Error("no Bearer token");
  const csr = request.certificateSigningRequest;
  const pem = csr && !csr.startsWith("-----") ? Buffer.from(csr, "base64").toString("utf8") : csr;
  return JSON.stringify({
    credentials: { oidcIdentityToken: auth.slice("Bearer ".length) },
    ...(request.publicKeyRequest ? { publicKeyRequest: request.publicKeyRequest } : {}),
    ...(pem ? { certificateSigningRequest: pem } : {}),
  });
}

// 2. Rekor adapter: canonicalise a dsse/0.0.1 proposal as Rekor's dsse type does.
function rekorRequest(body) {
  const proposal = JSON.parse(body);
  if (proposal.kind !== "dsse") return body;
  const content = proposal.spec.proposedContent;
  const envelope = JSON.parse(content.envelope);
  const [verifier] = content.verifiers;
  return JSON.stringify({
    apiVersion: proposal.apiVersion,
    kind: "dsse",
    spec: {
      envelopeHash: { algorithm: "sha256", value: sha256(Buffer.from(content.envelope)).toString("hex") },
      payloadHash: { algorithm: "sha256", value: sha256(Buffer.from(envelope.payload, "base64")).toString("hex") },
      signatures: envelope.signatures.map((s) => ({ signature: s.sig, verifier })),
    },
  });
}

function trustConfig(url, ca, ctlog, tlog) {
  const key = (rawBytes) => ({ rawBytes: b64(rawBytes), keyDetails: "PKIX_ECDSA_P256_SHA_256", validFor: { start: START } });
  const service = { url, majorApiVersion: 1, validFor: { start: START }, operator: "sigstore.mock" };
  return {
    mediaType: "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json",
    trustedRoot: {
      mediaType: "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
      tlogs: [{ baseUrl: url, hashAlgorithm: "SHA2_256", publicKey: key(tlog.publicKey),
                logId: { keyId: b64(sha256(tlog.publicKey)) } }],
      certificateAuthorities: [{ subject: { organization: "sigstore.mock", commonName: "sigstore" }, uri: url,
                                 certChain: { certificates: [{ rawBytes: b64(ca.rootCertificate) }] },
                                 validFor: { start: START } }],
      ctlogs: [{ baseUrl: url, hashAlgorithm: "SHA2_256", publicKey: key(ctlog.publicKey),
                 logId: { keyId: b64(ctlog.logID) } }],
      timestampAuthorities: [],
    },
    signingConfig: {
      mediaType: "application/vnd.dev.sigstore.signingconfig.v0.2+json",
      caUrls: [service], oidcUrls: [], rekorTlogUrls: [service], tsaUrls: [],
      rekorTlogConfig: { selector: "ANY" }, tsaConfig: { selector: "ANY" },
    },
  };
}

async function main() {
  const outDir = process.argv[2];
  if (!outDir) throw new Error("usage: node server.mjs OUT_DIR");
  const ctlog = await initializeCTLog(generateKeyPair());
  const ca = await initializeCA(generateKeyPair(), ctlog);
  const routes = {};
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", async () => {
      const route = req.method === "POST" ? routes[req.url] : undefined;
      if (!route) { res.writeHead(404).end("not found"); return; }
      try {
        const { statusCode, response, contentType } = await route(Buffer.concat(chunks).toString("utf8"), req.headers);
        res.writeHead(statusCode, { "Content-Type": contentType || "text/plain" }).end(response);
      } catch (e) {
        res.writeHead(400, { "Content-Type": "text/plain" }).end(String(e && e.message));
      }
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${server.address().port}`;
  const tlog = await initializeTLog(url, generateKeyPair());
  const fulcio = fulcioHandler(ca);
  const rekor = rekorHandler(tlog);
  routes[fulcio.path] = (body, headers) => fulcio.fn(fulcioRequest(body, headers));
  routes[rekor.path] = (body) => rekor.fn(rekorRequest(body));
  const file = path.join(outDir, "trust_config.json");
  fs.writeFileSync(file, JSON.stringify(trustConfig(url, ca, ctlog, tlog), null, 2) + "\n");
  process.stdout.write(JSON.stringify({ port: server.address().port, trust_config: file }) + "\n");
  const stop = () => server.close(() => process.exit(0));
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((e) => { process.stderr.write(`${e.stack || e}\n`); process.exit(1); });
