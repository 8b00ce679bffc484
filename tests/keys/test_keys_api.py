"""qsafe.keys public API: every algorithm, key ids, PEM forms, allowlists, key files and their errors."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mldsa

from qsafe import keys
from qsafe._crypto import der
from qsafe.errors import InvalidInputError, KeyFileError, OutputExistsError, SignatureError

ALL = keys.SIGNATURE_ALGORITHMS
MSG, CTX = b"message bytes", b"qsafe/v1 test context"


def test_algorithm_set() -> None:
    assert keys.DEFAULT_SIGNATURE_ALGORITHM == "ml-dsa-65"
    assert {"ml-dsa-44", "ml-dsa-65", "ml-dsa-87", "ml-dsa-65-ed25519", "ecdsa-p256"} <= set(ALL)
    assert keys.COMPOSITE_DRAFT_REVISION == "draft-ietf-lamps-pq-composite-sigs-19"


@pytest.mark.parametrize("algorithm", ALL)
def test_sign_verify_roundtrip(algorithm: str) -> None:
    private = keys.generate(algorithm)
    public = private.public_key()
    assert private.algorithm == public.algorithm == algorithm
    assert public.post_quantum is (not algorithm.startswith("ecdsa"))
    signature = private.sign(MSG, CTX)
    public.verify(signature, MSG, CTX)
    with pytest.raises(SignatureError, match=public.key_id):
        public.verify(signature, MSG + b"x", CTX)
    with pytest.raises(SignatureError):
        public.verify(signature[:-1] + bytes([signature[-1] ^ 1]), MSG, CTX)
    with pytest.raises(SignatureError):
        keys.generate(algorithm).public_key().verify(signature, MSG, CTX)  # another key


@pytest.mark.parametrize("algorithm", [a for a in ALL if not a.startswith("ecdsa")])
def test_context_is_bound_for_post_quantum(algorithm: str) -> None:
    private = keys.generate(algorithm)
    signature = private.sign(MSG, CTX)
    with pytest.raises(SignatureError):
        private.public_key().verify(signature, MSG, CTX + b"!")
    with pytest.raises(SignatureError):
        private.public_key().verify(signature, MSG, bytes(256))  # over-long context never verifies
    with pytest.raises(InvalidInputError):
        private.sign(MSG, bytes(256))


def test_ecdsa_ignores_context_and_matches_model_signing() -> None:
    """ECDSA has no context string (documented); hash and PEM hint are what model-signing uses."""
    private = keys.generate("ecdsa-p256")
    public = private.public_key()
    signature = private.sign(MSG, CTX)
    public.verify(signature, MSG, b"any other context")
    raw: ec.EllipticCurvePublicKey = serialization.load_pem_public_key(public.to_pem())  # type: ignore[assignment]
    raw.verify(signature, MSG, ec.ECDSA(hashes.SHA256()))  # plain DER ECDSA-SHA256, as model-signing verifies
    from model_signing._signing.sign_ec_key import get_ec_key_hash

    assert isinstance(get_ec_key_hash(raw), hashes.SHA256)
    cryptography_pem = raw.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert public.to_pem() == cryptography_pem
    assert public.model_signing_hint == hashlib.sha256(cryptography_pem).hexdigest()


@pytest.mark.parametrize(("curve", "hash_cls", "name"), [(ec.SECP384R1, hashes.SHA384, "ecdsa-p384"),
                                                          (ec.SECP521R1, hashes.SHA512, "ecdsa-p521")])
def test_model_signing_larger_curves_verify(curve: type[ec.EllipticCurve], hash_cls: type[hashes.HashAlgorithm],
                                            name: str) -> None:
    raw = ec.generate_private_key(curve())
    pem = raw.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    public = keys.public_key_from_pem(pem)
    assert public.algorithm == name and not public.post_quantum
    public.verify(raw.sign(MSG, ec.ECDSA(hash_cls())), MSG, b"")
    with pytest.raises(SignatureError):
        public.verify(raw.sign(MSG, ec.ECDSA(hashes.SHA256())), MSG, b"")


@pytest.mark.parametrize("algorithm", ALL)
def test_key_id_and_pem_roundtrip(algorithm: str) -> None:
    private = keys.generate(algorithm)
    public = private.public_key()
    assert public.key_id == "sha256:" + hashlib.sha256(public.to_der()).hexdigest()
    assert der.pem_blocks(public.to_pem()) == [("PUBLIC KEY", public.to_der())]
    assert keys.public_key_from_pem(public.to_pem()).key_id == public.key_id
    assert keys.public_key_from_der(public.to_der()).key_id == public.key_id
    again = keys.private_key_from_pem(private.to_pem())
    assert again.public_key().key_id == public.key_id
    public.verify(again.sign(MSG, CTX), MSG, CTX)


def test_mldsa_private_key_is_seed_only_pkcs8() -> None:
    private = keys.generate("ml-dsa-65")
    (label, pkcs8), = der.pem_blocks(private.to_pem())
    assert label == "PRIVATE KEY"
    assert len(pkcs8) == 54  # version, ML-DSA-65 OID, [0] 32-byte seed: no expanded key
    loaded = serialization.load_der_private_key(pkcs8, None)
    assert isinstance(loaded, mldsa.MLDSA65PrivateKey)


def test_raw_cryptography_keys_are_accepted() -> None:
    raw = mldsa.MLDSA44PrivateKey.generate()
    private = keys.PrivateKey("ml-dsa-44", raw)
    keys.PublicKey("ml-dsa-44", raw.public_key()).verify(private.sign(MSG, CTX), MSG, CTX)
    with pytest.raises(KeyFileError):
        keys.PrivateKey("ml-dsa-65", raw)


def test_unknown_and_unsupported() -> None:
    with pytest.raises(KeyFileError, match="unknown signature algorithm"):
        keys.generate("rsa-2048")
    ed = ed25519.Ed25519PrivateKey.generate().public_key()
    with pytest.raises(KeyFileError, match="unsupported"):
        keys.public_key_from_der(ed.public_bytes(serialization.Encoding.DER,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo))
    k1 = ec.generate_private_key(ec.SECP256K1()).public_key()
    with pytest.raises(KeyFileError, match="curve"):
        keys.public_key_from_pem(k1.public_bytes(serialization.Encoding.PEM,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo))


def test_composite_der_is_strict() -> None:
    public = keys.generate("ml-dsa-65-ed25519").public_key()
    spki = public.to_der()
    for bad in (spki + b"\x00", spki[:-1], spki[:6] + b"\x05\x00" + spki[6:]):
        with pytest.raises(KeyFileError):
            keys.public_key_from_der(bad)
    short = der.encode_spki("1.3.6.1.5.5.7.6.48", der.decode_spki(spki, "1.3.6.1.5.5.7.6.48")[:-1])
    with pytest.raises(KeyFileError, match="bytes"):
        keys.public_key_from_der(short)


def test_public_pem_errors(tmp_path: Path) -> None:
    private = keys.generate("ml-dsa-44")
    (tmp_path / "k.key").write_bytes(private.to_pem())
    with pytest.raises(KeyFileError) as info:
        keys.load_public_key(tmp_path / "k.key")
    assert "pass the .pub file" in info.value.hint
    (tmp_path / "two.pub").write_bytes(private.public_key().to_pem() * 2)
    with pytest.raises(KeyFileError, match="2 PEM blocks"):
        keys.load_public_key(tmp_path / "two.pub")
    (tmp_path / "junk.pub").write_bytes(b"not a key\n")
    with pytest.raises(KeyFileError, match="no PEM block"):
        keys.load_public_key(tmp_path / "junk.pub")
    with pytest.raises(KeyFileError, match="cannot read"):
        keys.load_public_key(tmp_path / "missing.pub")
    (tmp_path / "b64.pub").write_bytes(b"-----BEGIN PUBLIC KEY-----\n@@@\n-----END PUBLIC KEY-----\n")
    with pytest.raises(KeyFileError, match="base64"):
        keys.load_public_key(tmp_path / "b64.pub")


def test_pkcs8_encrypted_key_is_refused_with_hint(tmp_path: Path) -> None:
    raw = ec.generate_private_key(ec.SECP256R1())
    pem = raw.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.BestAvailableEncryption(b"pw"))
    (tmp_path / "enc.key").write_bytes(pem)
    with pytest.raises(KeyFileError) as info:
        keys.load_private_key(tmp_path / "enc.key", b"pw")
    assert "age-scrypt" in info.value.hint


def test_model_signing_ec_private_key_loads(tmp_path: Path) -> None:
    """model-signing users hold PKCS#8 (or SEC1 converted) EC keys; an unencrypted PKCS#8 one loads."""
    raw = ec.generate_private_key(ec.SECP256R1())
    pem = raw.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    (tmp_path / "ms.key").write_bytes(pem)
    private = keys.load_private_key(tmp_path / "ms.key")
    assert private.algorithm == "ecdsa-p256"
    raw.public_key().verify(private.sign(MSG, b""), MSG, ec.ECDSA(hashes.SHA256()))


def test_load_public_keys_file_and_directory(tmp_path: Path) -> None:
    pubs = [keys.generate(a).public_key() for a in ("ml-dsa-65", "ml-dsa-65-ed25519", "ecdsa-p256")]
    bundle = tmp_path / "allow.pem"
    bundle.write_bytes(b"# allowlist\n" + b"\n".join(p.to_pem() for p in pubs) + pubs[0].to_pem())
    assert [k.key_id for k in keys.load_public_keys(bundle)] == [p.key_id for p in pubs]
    directory = tmp_path / "clients"
    directory.mkdir()
    for i, p in enumerate(pubs):
        (directory / f"client{i}.pub").write_bytes(p.to_pem())
    (directory / "notes.txt").write_text("ignored: not a .pub file")
    assert {k.key_id for k in keys.load_public_keys(directory)} == {p.key_id for p in pubs}
    (directory / "bad.pub").write_bytes(keys.generate("ml-dsa-44").to_pem())
    with pytest.raises(KeyFileError, match="PRIVATE KEY"):
        keys.load_public_keys(directory)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(KeyFileError, match="no public key"):
        keys.load_public_keys(empty)


def test_write_key_pair_unprotected(tmp_path: Path) -> None:
    private = keys.generate("ml-dsa-87")
    pub_path, key_path = keys.write_key_pair(private, tmp_path / "rel", None)
    assert (pub_path, key_path) == (tmp_path / "rel.pub", tmp_path / "rel.key")
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(pub_path.stat().st_mode) == 0o644
    assert keys.load_public_key(pub_path).key_id == private.public_key().key_id
    assert keys.load_private_key(key_path).public_key().key_id == private.public_key().key_id
    before = (pub_path.read_bytes(), key_path.read_bytes())
    with pytest.raises(OutputExistsError):
        keys.write_key_pair(keys.generate("ml-dsa-87"), tmp_path / "rel", None)
    assert (pub_path.read_bytes(), key_path.read_bytes()) == before
    other = keys.generate("ml-dsa-87")
    keys.write_key_pair(other, tmp_path / "rel", None, overwrite=True)
    assert keys.load_public_key(pub_path).key_id == other.public_key().key_id
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".qsafe-tmp")]


def test_key_details_names() -> None:
    names = {a: keys.generate(a).public_key().key_details for a in ALL}
    assert names["ml-dsa-65"] == "ML_DSA_65" and names["ecdsa-p256"] == "PKIX_ECDSA_P256_SHA_256"
    assert names["ml-dsa-65-ed25519"].endswith("_DRAFT19")  # the composite name pins the draft revision
    assert len(set(names.values())) == len(names)


def test_is_protected_key_file(tmp_path: Path) -> None:
    keys.write_key_pair(keys.generate("ml-dsa-44"), tmp_path / "plain", None)
    keys.write_key_pair(keys.generate("ml-dsa-44"), tmp_path / "locked", b"pw")
    assert not keys.is_protected_key_file(tmp_path / "plain.key")
    assert keys.is_protected_key_file(tmp_path / "locked.key")
    with pytest.raises(KeyFileError):
        keys.is_protected_key_file(tmp_path / "absent.key")


def test_public_key_path_imports_no_age_code(tmp_path: Path) -> None:
    """`qsafe verify` start-up: loading a .pub and verifying must not import qsafe._age."""
    import subprocess
    import sys

    private = keys.generate("ml-dsa-65")
    (tmp_path / "k.pub").write_bytes(private.public_key().to_pem())
    (tmp_path / "sig").write_bytes(private.sign(MSG, CTX))
    code = ("import sys; from qsafe import keys; k = keys.load_public_key(sys.argv[1]); "
            "k.verify(open(sys.argv[2], 'rb').read(), sys.argv[3].encode(), sys.argv[4].encode()); "
            "print(sorted(m for m in sys.modules if m.startswith('qsafe._age') or m in ('torch', 'tenseal')))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "k.pub"), str(tmp_path / "sig"),
                          MSG.decode(), CTX.decode()], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_equality_and_repr(tmp_path: Path) -> None:
    private = keys.generate("ml-dsa-65-ed25519")
    keys.write_key_pair(private, tmp_path / "k", None)
    loaded_pub, loaded_priv = keys.load_public_key(tmp_path / "k.pub"), keys.load_private_key(tmp_path / "k.key")
    assert loaded_pub == private.public_key() and hash(loaded_pub) == hash(private.public_key())
    assert loaded_priv == private and loaded_pub in {private.public_key()}
    other = keys.generate("ml-dsa-65-ed25519")
    assert other.public_key() != loaded_pub and other != private
    assert repr(loaded_pub) == f"PublicKey('ml-dsa-65-ed25519', {loaded_pub.key_id})"
    (_, pkcs8), = der.pem_blocks(private.to_pem())
    assert pkcs8.hex() not in repr(private) and "ml-dsa-65-ed25519" in repr(private)
