"""Attacks stay inside the threat model, are deterministic, and are at least as strong as ART's (the peer)."""

from __future__ import annotations

import numpy as np
import pytest

from qsafe.errors import UsageError
from qsafe.robustness import attacks as A
from qsafe.robustness.evaluation import clean_accuracy, evaluate_attacks, masking_checks

torch = pytest.importorskip("torch")


def _gen(seed: int = 0):
    g = torch.Generator()
    g.manual_seed(seed)
    return g


@pytest.mark.parametrize("name", ["fgsm", "pgd", "apgd-ce"])
@pytest.mark.parametrize("norm,eps", [("linf", 0.1), ("l2", 0.5)])
def test_inside_threat_model(small_model, test_batch, name, norm, eps) -> None:
    x, y = test_batch
    adv, broken = A.run_attack(small_model, x, y, A.AttackSpec(name, norm, eps, steps=10), gen=_gen())
    delta = (adv - x).flatten(1)
    size = delta.abs().max(1).values if norm == "linf" else delta.norm(dim=1)
    assert float(size.max()) <= eps + 1e-5
    assert float(adv.min()) >= 0.0 and float(adv.max()) <= 1.0
    with torch.no_grad():  # the reported broken mask is what the returned inputs do
        assert torch.equal(small_model(adv).argmax(1) != y, broken)


def test_pgd_stronger_than_fgsm_and_deterministic(small_model, test_batch) -> None:
    x, y = test_batch
    _, b_fgsm = A.run_attack(small_model, x, y, A.AttackSpec("fgsm", "linf", 0.1), gen=_gen())
    adv1, b1 = A.run_attack(small_model, x, y, A.AttackSpec("pgd", "linf", 0.1, steps=20, restarts=2), gen=_gen(3))
    adv2, b2 = A.run_attack(small_model, x, y, A.AttackSpec("pgd", "linf", 0.1, steps=20, restarts=2), gen=_gen(3))
    assert torch.equal(adv1, adv2) and torch.equal(b1, b2)
    assert int(b1.sum()) >= int(b_fgsm.sum())


def test_accuracy_vanishes_at_large_epsilon(small_model, test_batch) -> None:
    x, y = test_batch
    _, broken = A.run_attack(small_model, x, y, A.AttackSpec("pgd", "linf", 0.5, steps=20), gen=_gen())
    assert float(broken.float().mean()) >= 0.97


def test_apgd_checkpoints_follow_the_paper() -> None:
    assert A._checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]


def test_bad_parameters() -> None:
    with pytest.raises(UsageError):
        A.project(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8), "l1", 0.1)
    with pytest.raises(UsageError):
        A.pgd(None, torch.zeros(1, 1, 8, 8), torch.zeros(1, dtype=torch.long), float("nan"))
    with pytest.raises(UsageError):
        A.run_attack(None, torch.zeros(1, 1, 8, 8), torch.zeros(1, dtype=torch.long), A.AttackSpec("cw", "linf", 0.1))


def test_worst_case_and_masking_checks(small_model, digits_split) -> None:
    _, te = digits_split
    specs = [A.AttackSpec("fgsm", "linf", 0.1), A.AttackSpec("pgd", "linf", 0.1, steps=10)]
    (res,) = evaluate_attacks(small_model, te.x[:60], te.y[:60], specs)
    assert res.robust_accuracy <= min(a["accuracy"] for a in res.attacks)
    checks = masking_checks([res], large_eps_accuracy=0.0)
    assert checks["iterative_not_weaker_than_fgsm"] and checks["passed"]
    masked = A.AttackSpec("pgd", "linf", 0.1)
    fake = type(res)("linf", 0.1, [{**A.AttackSpec("fgsm", "linf", 0.1).describe(), "accuracy": 0.2},
                                   {**masked.describe(), "accuracy": 0.6}], 0.2, 60)
    assert masking_checks([fake])["passed"] is False
    assert 0.5 < clean_accuracy(small_model, te.x[:60], te.y[:60]) <= 1.0


def test_qsafe_pgd_at_least_as_strong_as_art(small_model, digits_split) -> None:
    art = pytest.importorskip("qsafe.robustness._art")
    pytest.importorskip("art")
    _, te = digits_split
    x, y = te.x[:80], te.y[:80]
    ours = 1 - float(A.run_attack(small_model, torch.from_numpy(x), torch.from_numpy(y),
                                  A.AttackSpec("pgd", "linf", 0.1, steps=10), gen=_gen())[1].float().mean())
    theirs = art.pgd(small_model, x, y, 0.1, steps=10)
    assert ours <= theirs + 0.01, (ours, theirs)
    ours_apgd = 1 - float(A.run_attack(small_model, torch.from_numpy(x), torch.from_numpy(y),
                                       A.AttackSpec("apgd-ce", "linf", 0.1, steps=20), gen=_gen())[1].float().mean())
    assert ours_apgd <= art.apgd(small_model, x, y, 0.1, steps=20) + 0.02
    assert np.isfinite(theirs)


def test_art_attacks_join_the_worst_case_image_by_image(small_model, digits_split) -> None:
    pytest.importorskip("art")
    _, te = digits_split
    x, y = torch.from_numpy(te.x[:60]), torch.from_numpy(te.y[:60])
    specs = [A.AttackSpec("pgd", "linf", 0.1, steps=10), A.AttackSpec("art-pgd", "linf", 0.1, steps=10),
             A.AttackSpec("art-apgd-ce", "linf", 0.1, steps=10)]
    masks = []
    for spec in specs:
        adv, broken = A.run_attack(small_model, x, y, spec, gen=_gen())
        delta = (adv - x).flatten(1).abs().max(1).values
        assert float(delta.max()) <= 0.1 + 1e-5 and float(adv.min()) >= 0 and float(adv.max()) <= 1
        with torch.no_grad():  # ART's examples are judged by the model itself
            assert torch.equal(small_model(adv).argmax(1) != y, broken)
        masks.append(broken)
    (res,) = evaluate_attacks(small_model, te.x[:60], te.y[:60], specs)
    union = masks[0] | masks[1] | masks[2]
    assert res.robust_accuracy == pytest.approx(1 - float(union.float().mean()))
    assert [a["name"] for a in res.attacks] == ["pgd", "art-pgd", "art-apgd-ce"]
    assert res.attacks[1]["engine"] == "adversarial-robustness-toolbox"
    assert res.robust_accuracy <= min(a["accuracy"] for a in res.attacks)
