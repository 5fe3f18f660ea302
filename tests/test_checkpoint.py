import pickle

import pytest
import torch

from audio_lottery.files import atomic_write_text, load_tensors_any
from audio_lottery.train.checkpoint import load_training_state, save_training_state


def _model_and_opt():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 2))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(3):
        opt.zero_grad()
        model(torch.randn(5, 4)).pow(2).sum().backward()
        opt.step()
    return model, opt


def test_training_state_round_trip(tmp_path):
    model, opt = _model_and_opt()
    save_training_state(tmp_path, "last", model, opt, {"state": {"epoch": 3}})
    torch.manual_seed(1)
    model2 = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 2))
    opt2 = torch.optim.AdamW(model2.parameters(), lr=1e-2)
    info = load_training_state(tmp_path, "last", model2, opt2)
    assert info["state"]["epoch"] == 3
    for a, b in zip(model.state_dict().values(), model2.state_dict().values()):
        assert torch.equal(a, b)
    # the same next step from both
    x = torch.randn(5, 4)
    for m, o in ((model, opt), (model2, opt2)):
        o.zero_grad()
        m(x).pow(2).sum().backward()
        o.step()
    for a, b in zip(model.parameters(), model2.parameters()):
        assert torch.allclose(a, b)


def test_missing_checkpoint_returns_none(tmp_path):
    model, opt = _model_and_opt()
    assert load_training_state(tmp_path, "last", model, opt) is None


class _Evil:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (atomic_write_text.__call__, (self.path, "pwned"))


def test_pickle_checkpoint_is_refused_and_runs_nothing(tmp_path):
    victim = tmp_path / "written_by_pickle.txt"
    ckpt = tmp_path / "evil.pt"
    ckpt.write_bytes(pickle.dumps({"model": _Evil(victim)}))
    with pytest.raises(ValueError, match="evil.pt"):
        load_tensors_any(ckpt)
    assert not victim.exists()
