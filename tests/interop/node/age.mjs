// Interop driver around typage (npm age-encryption 0.3.1) for qsafe's tests.
//   node age.mjs keygen [pq|x25519]                 -> JSON {identity, recipient}
//   node age.mjs encrypt (-r RECIPIENT)... [-a]      stdin -> stdout
//   node age.mjs encrypt -p PASSPHRASE -w N [-a]     stdin -> stdout
//   node age.mjs decrypt (-i IDENTITY | -p PASSPHRASE)...  stdin (binary or armored) -> stdout
// Exit status 1 with the error message on stderr when typage refuses the input.
import * as age from "age-encryption";

async function readStdin() {
  const parts = [];
  for await (const chunk of process.stdin) parts.push(chunk);
  return new Uint8Array(Buffer.concat(parts));
}

function options(argv) {
  const out = { r: [], i: [], p: [], a: false, w: 18 };
  for (let k = 0; k < argv.length; k++) {
    const flag = argv[k];
    if (flag === "-a") out.a = true;
    else if (flag === "-w") out.w = Number(argv[++k]);
    else if (["-r", "-i", "-p"].includes(flag)) out[flag.slice(1)].push(argv[++k]);
    else throw new Error(`unknown argument ${flag}`);
  }
  return out;
}

async function main() {
  const [command, ...rest] = process.argv.slice(2);
  if (command === "keygen") {
    const identity = rest[0] === "x25519" ? await age.generateX25519Identity() : await age.generateHybridIdentity();
    process.stdout.write(JSON.stringify({ identity, recipient: await age.identityToRecipient(identity) }));
    return;
  }
  const opts = options(rest);
  const input = await readStdin();
  if (command === "encrypt") {
    const e = new age.Encrypter();
    if (opts.p.length) { e.setPassphrase(opts.p[0]); e.setScryptWorkFactor(opts.w); }
    for (const r of opts.r) e.addRecipient(r);
    const sealed = await e.encrypt(input);
    process.stdout.write(opts.a ? age.armor.encode(sealed) : sealed);
  } else if (command === "decrypt") {
    const d = new age.Decrypter();
    for (const i of opts.i) d.addIdentity(i);
    for (const p of opts.p) d.addPassphrase(p);
    const text = Buffer.from(input).toString("latin1");
    const binary = text.trimStart().startsWith("-----BEGIN") ? age.armor.decode(text) : input;
    process.stdout.write(await d.decrypt(binary));
  } else {
    throw new Error(`unknown command ${command}`);
  }
}

main().catch((err) => { process.stderr.write(`${err.message}\n`); process.exit(1); });
