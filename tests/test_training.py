"""The shared training loop and checkpoints (lab_utils.training)."""

import pandas as pd
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lab_utils.checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from lab_utils.training import (Checkpointer, Checkpoints, EarlyStopping, Steps, Stopping, _seed_epoch,
                                classification_step, evaluate, fit, get_optimizer_and_scheduler,
                                train_one_epoch)


def blobs(n=256, seed=0):
    """Two Gaussian blobs in 2-D: a problem a tiny MLP solves."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = torch.randn(n, 2, generator=g) * 0.6 + (y[:, None] * 2 - 1) * 1.5
    return TensorDataset(x, y)


def mlp(seed=0, dropout=0.0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Dropout(dropout), nn.Linear(16, 2))


def loaders(seed=0):
    train = DataLoader(blobs(256, seed), batch_size=32, shuffle=True)
    val = DataLoader(blobs(128, seed + 1), batch_size=64)
    return train, val


def test_fit_learns_and_returns_history():
    model = mlp()
    train, val = loaders()
    hist = fit(model, train, val, epochs=5, lr=0.05, progress=False, verbose=False)
    assert isinstance(hist, pd.DataFrame) and list(hist["epoch"]) == [1, 2, 3, 4, 5]
    for col in ("train_loss", "val_loss", "val_acc", "val_f1_macro", "lr", "seconds", "samples_per_s"):
        assert col in hist.columns
    assert hist["val_acc"].iloc[-1] > 0.95
    assert hist["train_loss"].iloc[-1] < hist["train_loss"].iloc[0]
    assert hist.attrs["best_epoch"] == int(hist.loc[hist["val_f1_macro"].idxmax(), "epoch"])


def test_dict_batches_and_eval_fn():
    class Dicts(torch.utils.data.Dataset):
        def __init__(self):
            self.base = blobs(64)
        def __len__(self):
            return len(self.base)
        def __getitem__(self, i):
            x, y = self.base[i]
            return {"pixel_values": x, "label": y}
    loader = DataLoader(Dicts(), batch_size=16)
    hist = fit(mlp(), loader, loader, epochs=2, progress=False, verbose=False,
               eval_fn=lambda m: {"answer": 42.0})
    assert list(hist["answer"]) == [42.0, 42.0]


def test_grad_accumulation_matches_big_batch():
    data = blobs(64)
    a, b = mlp(1), mlp(1)
    opt_a = torch.optim.SGD(a.parameters(), lr=0.1)
    opt_b = torch.optim.SGD(b.parameters(), lr=0.1)
    fit(a, DataLoader(data, batch_size=32), epochs=1, optimizer=opt_a, progress=False, verbose=False)
    fit(b, DataLoader(data, batch_size=16), epochs=1, optimizer=opt_b, steps=Steps(grad_accum_steps=2),
        progress=False, verbose=False)
    # two accumulated half-batches (each loss / 2) give the same update as one full batch
    for pa, pb in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(pa, pb, atol=1e-6, rtol=1e-5)


def test_early_stopping_stops_and_restores_best(tmp_path):
    stopper = EarlyStopping(patience=2, mode="max")
    assert [stopper.step(v) for v in (0.5, 0.6, 0.55, 0.58)] == [True, True, False, False]
    assert stopper.should_stop and stopper.best == 0.6 and stopper.best_epoch == 2
    with pytest.raises(ValueError, match="patience must be ≥ 1"):
        EarlyStopping(0)

    model = mlp()
    train, val = loaders()
    # an absurd learning rate for later epochs makes validation worse after epoch 1
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0 if step < 8 else 30.0)
    hist = fit(model, train, val, epochs=30, optimizer=opt, scheduler=sched,
               stopping=Stopping(metric="val_loss", mode="min", patience=2), steps=Steps(max_grad_norm=1.0),
               checkpoints=Checkpoints(tmp_path), progress=False, verbose=False)
    stopped, best = hist.attrs["stopped_epoch"], hist.attrs["best_epoch"]
    assert stopped is not None and stopped < 30 and stopped - best == 2
    restored = evaluate(model, val)["val_loss"]
    assert restored == pytest.approx(hist.loc[hist["epoch"] == best, "val_loss"].item(), rel=1e-5)


class Disconnect(Exception):
    pass


def test_resume_after_interruption_gives_same_weights(tmp_path):
    def run(ckpt, interrupt_at=None):
        model = mlp(dropout=0.2)
        train, val = loaders()
        opt = torch.optim.AdamW(model.parameters(), lr=0.02)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.5)
        calls = {"n": 0}
        base = classification_step()

        def step(m, batch):
            calls["n"] += 1
            if interrupt_at and calls["n"] == interrupt_at:
                raise Disconnect
            return base(m, batch)
        fit(model, train, val, epochs=4, optimizer=opt, scheduler=sched, step_fn=step,
            checkpoints=Checkpoints(ckpt), stopping=Stopping(restore_best=False), progress=False,
            verbose=False)
        return model

    reference = run(tmp_path / "a")
    with pytest.raises(Disconnect):
        run(tmp_path / "b", interrupt_at=8 * 2 + 2 * 1 + 5)   # mid-way through epoch 3
    assert load_checkpoint(tmp_path / "b" / "last.safetensors", mlp(dropout=0.2))["epoch"] == 2
    resumed = run(tmp_path / "b")
    for p, q in zip(reference.parameters(), resumed.parameters()):
        assert torch.equal(p, q)


def test_nan_loss_guard():
    def bad_step(model, batch):
        x, y = batch
        return {"loss": model(x).sum() * float("nan")}
    train, _ = loaders()
    with pytest.raises(FloatingPointError, match=r"loss became nan at epoch 1, batch 1.*Lower the learning rate"):
        fit(mlp(), train, epochs=1, step_fn=bad_step, progress=False, verbose=False)


def test_no_trainable_parameters_is_explained():
    model = mlp()
    for p in model.parameters():
        p.requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        fit(model, loaders()[0], epochs=1, progress=False, verbose=False)


def test_checkpoint_round_trip_with_optimizer_and_scheduler(tmp_path):
    model = mlp()
    opt = torch.optim.AdamW(model.parameters(), lr=0.01)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    fit(model, loaders()[0], epochs=1, optimizer=opt, scheduler=sched, progress=False, verbose=False)
    path = save_checkpoint(tmp_path / "ck.safetensors", model, opt, sched, epoch=3, note="hi")
    other = mlp(seed=5)
    opt2 = torch.optim.AdamW(other.parameters(), lr=0.01)
    sched2 = torch.optim.lr_scheduler.StepLR(opt2, step_size=1, gamma=0.5)
    state = load_checkpoint(path, other, opt2, sched2)
    assert state == {"epoch": 3, "note": "hi"}
    for p, q in zip(model.parameters(), other.parameters()):
        assert torch.equal(p, q)
    s1, s2 = opt.state_dict(), opt2.state_dict()
    assert s1["param_groups"] == s2["param_groups"]
    for pid in s1["state"]:
        for key, value in s1["state"][pid].items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(s2["state"][pid][key]))
    assert sched2.state_dict() == sched.state_dict()


def test_corrupt_checkpoint_named_and_previous_survives_failed_write(tmp_path, monkeypatch):
    model = mlp()
    path = save_checkpoint(tmp_path / "ck.safetensors", model, epoch=1)
    good = path.read_bytes()
    truncated = tmp_path / "broken.safetensors"
    truncated.write_bytes(good[: len(good) // 2])
    with pytest.raises(CheckpointError, match=r"broken\.safetensors is corrupt or truncated"):
        load_checkpoint(truncated, mlp())

    import lab_utils.checkpoints as T                     # where the file is written

    def failing_save(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"partial")
        raise OSError("disk full")
    monkeypatch.setattr(T, "save_file", failing_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, model, epoch=2)
    assert path.read_bytes() == good                      # the last good checkpoint survives
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_checkpoint_from_other_architecture_is_refused(tmp_path):
    path = save_checkpoint(tmp_path / "ck.safetensors", mlp())
    before = path.read_bytes()
    wider = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Dropout(0.0), nn.Linear(32, 2))
    with pytest.raises(CheckpointError, match=r"different architecture.*other shapes \(e\.g\. 0\.weight: checkpoint \(16, 2\) vs model \(32, 2\)\)"):
        load_checkpoint(path, wider)
    assert path.read_bytes() == before
    with pytest.raises(FileNotFoundError, match="No checkpoint at"):
        load_checkpoint(tmp_path / "missing.safetensors", mlp())


def test_a_shared_loader_generator_gives_the_same_run_whatever_ran_before():
    """A DataLoader that shuffles with its own torch.Generator: fit reseeds it every epoch,
    so a model trained after another one on the same loader (notebook 03's loop over
    variants) and a model trained on a fresh loader see the same batches; without that the
    second run depended on how many epochs the first one took."""
    data = blobs(96)
    shared = DataLoader(data, batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(0))

    def run(loader, epochs=3):
        torch.manual_seed(0)
        model = mlp()
        fit(model, loader, epochs=epochs, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
            progress=False, verbose=False)
        return model

    run(shared, epochs=5)                                   # a first variant advances the generator
    after = run(shared)
    fresh = run(DataLoader(data, batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(123)))
    for p, q in zip(after.parameters(), fresh.parameters()):
        assert torch.equal(p, q)


def test_fit_is_its_pieces_seed_then_train_one_epoch():
    """One epoch of fit = _seed_epoch, then train_one_epoch: the same weights, the same loss."""
    train, val = loaders()
    a, b = mlp(dropout=0.2), mlp(dropout=0.2)
    hist = fit(a, train, val, epochs=1, optimizer=torch.optim.SGD(a.parameters(), lr=0.1), seed=3,
               progress=False, verbose=False, stopping=Stopping(restore_best=False))
    _seed_epoch(3, 0, train)
    out = train_one_epoch(b, train, torch.optim.SGD(b.parameters(), lr=0.1), progress=False)
    assert set(out) == {"train_loss", "samples_per_s", "samples"} and out["samples_per_s"] > 0
    assert out["train_loss"] == hist["train_loss"].item()
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)
    with pytest.raises(ValueError, match="grad_accum_steps must be ≥ 1, got 0"):
        Steps(grad_accum_steps=0)
    with pytest.raises(ValueError, match="scheduler_per must be 'step' or 'epoch', got 'batch'"):
        Steps(scheduler_per="batch")


def test_early_stopping_without_patience_tracks_the_best_and_never_stops():
    stopper = EarlyStopping(None, mode="min")
    assert [stopper.step(v, epoch=e) for e, v in ((1, 0.9), (2, 0.5), (3, 0.7), (4, 0.8), (5, 0.95))] == \
        [True, True, False, False, False]
    assert (stopper.best, stopper.best_epoch, stopper.bad_epochs) == (0.5, 2, 3) and not stopper.should_stop
    with pytest.raises(ValueError, match="mode must be 'max'.*or 'min'.*got 'best'"):
        EarlyStopping(None, mode="best")


def test_early_stopping_alone_decides_the_best_epoch(monkeypatch, capsys):
    """fit keeps no best of its own: the epoch EarlyStopping calls best is the one fit reports,
    marks and restores, with or without patience."""
    import lab_utils.training as T

    class ThirdIsBest(EarlyStopping):
        def step(self, value, epoch=None):
            self.epoch = epoch
            if epoch == 3:
                self.best, self.best_epoch = float(value), epoch
            return epoch == 3

    monkeypatch.setattr(T, "EarlyStopping", ThirdIsBest)
    snapshots = []

    def snapshot(m):
        snapshots.append({k: v.clone() for k, v in m.state_dict().items()})
        return {}
    train, val = loaders()
    model = mlp()
    hist = fit(model, train, val, epochs=5, lr=0.05, eval_fn=snapshot, progress=False)
    assert hist.attrs["best_epoch"] == 3 and hist.attrs["stopped_epoch"] is None
    marked = [line.split("/")[0].split()[-1] for line in capsys.readouterr().out.splitlines() if "· best" in line]
    assert marked == ["3"]
    for k, v in model.state_dict().items():                 # the third epoch's weights came back
        assert torch.equal(v, snapshots[2][k])


def test_checkpointer_round_trip_and_resume(tmp_path):
    model, train = mlp(), loaders()[0]
    opt = torch.optim.AdamW(model.parameters(), lr=0.01)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    stopper = EarlyStopping(3, mode="min")
    ckpt = Checkpointer(tmp_path / "run", model, opt, sched, stopper)
    assert ckpt.resume(epochs=4) == (0, [])                 # nothing saved yet: start afresh
    history = []
    for epoch, value in ((1, 0.8), (2, 0.6), (3, 0.7)):
        train_one_epoch(model, train, opt, scheduler=sched, steps=Steps(scheduler_per="epoch"),
                        progress=False)
        history.append({"epoch": epoch, "val_loss": value})
        ckpt.save(epoch, history, "val_loss", stopper.step(value, epoch))
    assert load_checkpoint(ckpt.best, mlp()) == {"epoch": 2, "metric": "val_loss", "value": 0.6}

    other = mlp(seed=5)
    opt2 = torch.optim.AdamW(other.parameters(), lr=0.01)
    sched2 = torch.optim.lr_scheduler.StepLR(opt2, step_size=1, gamma=0.5)
    stopper2 = EarlyStopping(3, mode="min")
    start, rows = Checkpointer(tmp_path / "run", other, opt2, sched2, stopper2).resume(epochs=4, verbose=False)
    assert (start, rows) == (3, history)
    assert stopper2.state_dict() == stopper.state_dict() == {"best": 0.6, "best_epoch": 2, "bad_epochs": 1, "epoch": 3}
    assert sched2.state_dict() == sched.state_dict()
    for p, q in zip(model.parameters(), other.parameters()):
        assert torch.equal(p, q)

    # saved without patience: the best still comes back (from best_value / best_epoch)
    tracker = EarlyStopping(None)
    plain = Checkpointer(tmp_path / "plain", model, opt, stopper=tracker)
    plain.save(1, history[:1], "val_f1_macro", tracker.step(0.5, 1))
    assert load_checkpoint(plain.last, mlp())["early_stopping"] is None
    again = EarlyStopping(None)
    assert Checkpointer(tmp_path / "plain", mlp(), torch.optim.AdamW(mlp().parameters()),
                        stopper=again).resume(epochs=2, verbose=False) == (1, history[:1])
    assert (again.best, again.best_epoch) == (0.5, 1)


def test_checkpointer_says_a_stopped_run_is_finished(tmp_path, capsys):
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    stopper = EarlyStopping(1)
    ckpt = Checkpointer(tmp_path, model, opt, stopper=stopper)
    for epoch, value in ((1, 0.9), (2, 0.8)):
        ckpt.save(epoch, [], "val_f1_macro", stopper.step(value, epoch))
    assert stopper.should_stop
    assert Checkpointer(tmp_path, model, opt, stopper=EarlyStopping(1)).resume(epochs=10)[0] >= 10
    assert f"Resumed from {tmp_path / 'last.safetensors'} after epoch 2/10." in capsys.readouterr().out


class TwoPart(nn.Module):
    backbone_modules = ("vit",)

    def __init__(self):
        super().__init__()
        self.vit, self.head = nn.Linear(4, 4), nn.Linear(4, 2)


def test_backbone_lr_scale():
    model = TwoPart()
    opt, _ = get_optimizer_and_scheduler(model, 1e-3, 0, 10)           # default 0.1
    groups = {g["name"]: g for g in opt.param_groups}
    assert list(groups) == ["backbone", "head"]
    assert groups["backbone"]["initial_lr"] == pytest.approx(1e-4) and groups["head"]["initial_lr"] == 1e-3
    opt, _ = get_optimizer_and_scheduler(model, 1e-3, 0, 10, backbone_lr_scale=0.5)
    assert [g["initial_lr"] for g in opt.param_groups] == pytest.approx([5e-4, 1e-3])

    opt, sched = get_optimizer_and_scheduler(model, 1e-3, 0, 10, backbone_lr_scale=1.0)   # from scratch
    assert [g["name"] for g in opt.param_groups] == ["all"] and opt.param_groups[0]["initial_lr"] == 1e-3
    assert opt.param_groups[0]["params"] == list(model.parameters())   # every weight, in model order
    for bad in (0.0, -0.1, float("nan")):
        with pytest.raises(ValueError, match=rf"backbone_lr_scale must be > 0, got {bad}: 0\.1 for a pretrained"):
            get_optimizer_and_scheduler(model, 1e-3, 0, 10, backbone_lr_scale=bad)


def test_adamw_decays_weight_matrices_only_when_asked_and_leaves_frozen_weights_out():
    from lab_utils.training import adamw

    model = TwoPart()
    opt = adamw(model, 1e-3, weight_decay=0.05, backbone_lr_scale=0.1, decay_matrices_only=True)
    groups = {g["name"]: (g["params"], g["lr"], g["weight_decay"]) for g in opt.param_groups}
    assert groups == {"backbone/decay": ([model.vit.weight], pytest.approx(1e-4), 0.05),
                      "backbone/no_decay": ([model.vit.bias], pytest.approx(1e-4), 0.0),
                      "head/decay": ([model.head.weight], 1e-3, 0.05),
                      "head/no_decay": ([model.head.bias], 1e-3, 0.0)}
    model.vit.requires_grad_(False)
    opt = adamw(model, 1e-3)                                           # defaults: one group, decay 0.01 everywhere
    assert [(g["name"], g["params"], g["weight_decay"]) for g in opt.param_groups] == [
        ("all", [model.head.weight, model.head.bias], 0.01)]
    model.head.requires_grad_(False)
    with pytest.raises(ValueError, match=r"no trainable parameters \(every requires_grad is False\): unfreeze"):
        adamw(model, 1e-3)
    with pytest.raises(ValueError, match="learning_rate must be > 0, got 0"):
        adamw(TwoPart(), 0)


def test_train_variant_is_fit_plus_predict_with_the_lab_optimizer():
    """train_variant = get_optimizer_and_scheduler + fit + predict, as the notebooks wrote it
    by hand: the same weights and test logits as doing the three steps explicitly."""
    from lab_utils.training import get_optimizer_and_scheduler, predict, train_variant

    train, val = loaders()
    test = DataLoader(blobs(64, seed=9), batch_size=32)

    torch.manual_seed(0)
    by_hand = mlp()
    steps = 3 * len(train)
    opt, sched = get_optimizer_and_scheduler(by_hand, 0.05, int(0.1 * steps), steps, 0.01, backbone_lr_scale=1.0)
    fit(by_hand, train, val, epochs=3, optimizer=opt, scheduler=sched, progress=False, verbose=False, seed=4)
    want, labels = predict(by_hand, test)

    torch.manual_seed(0)
    run = train_variant(mlp(), {"train": train, "val": val, "test": test}, classification_step(), epochs=3,
                        learning_rate=0.05, backbone_lr_scale=1.0, seed=4)
    assert torch.equal(run.logits, want) and torch.equal(run.labels, labels)
    assert len(run.history) == 3 and run.seconds > 0
    assert set(run.scores()) == {"accuracy", "f1_macro"}
    stopped = train_variant(mlp(), {"train": train, "val": val}, classification_step(), epochs=10,
                            learning_rate=0.05, test=False,
                            stopping=Stopping(metric="val_loss", mode="max", patience=1))
    # a falling loss never "improves" in mode "max": the run stops one epoch after the first
    assert stopped.history.attrs == {"best_epoch": 1, "stopped_epoch": 2, "metric": "val_loss"}
    untested = train_variant(mlp(), {"train": train}, classification_step(), epochs=1, learning_rate=0.05, test=False)
    with pytest.raises(ValueError, match="was not tested"):
        untested.scores()


def test_a_tested_variant_knows_its_test_people_and_its_intervals_resample_them():
    """A test set whose items carry subject ids (8 people × 8 items): the variant keeps them in the
    test loader's order, and its score intervals are those of a bootstrap over the 8 people, not the
    64 items; a test set with no subject ids falls back to the items."""
    from torch.utils.data import Subset
    from lab_utils.metrics import score_intervals
    from lab_utils.training import train_variant

    class PeopleBlobs(TensorDataset):
        def __init__(self):
            x, _ = blobs(64, seed=9).tensors
            super().__init__(x, torch.randint(0, 2, (64,), generator=torch.Generator().manual_seed(1)))  # a hard test
            self.subjects = torch.arange(64).div(8, rounding_mode="floor").numpy()
    test_set = Subset(PeopleBlobs(), list(range(63, -1, -1)))
    train, val = loaders()
    run = train_variant(mlp(), {"train": train, "val": val, "test": DataLoader(test_set, batch_size=16)},
                        classification_step(), epochs=1, learning_rate=0.05, backbone_lr_scale=1.0)
    assert run.subjects.tolist() == [i // 8 for i in range(63, -1, -1)]
    got = run.scores(intervals=True)
    pred = run.logits.argmax(1)
    assert got["accuracy_low"] == score_intervals(run.labels, pred, 2, groups=run.subjects)["accuracy_low"]
    assert (got["f1_macro_low"], got["f1_macro_high"]) != tuple(score_intervals(run.labels, pred, 2)[k]
                                                                for k in ("f1_macro_low", "f1_macro_high"))
    plain = train_variant(mlp(), {"train": train, "val": val, "test": DataLoader(blobs(64, 9), batch_size=16)},
                          classification_step(), epochs=1, learning_rate=0.05, backbone_lr_scale=1.0)
    assert plain.subjects is None


def _count_host_syncs(monkeypatch) -> list[tuple[str, str, int]]:
    """Record every item() / tolist() / float() / int() / bool() on a tensor made by the lab's own
    code (the caller's file is in lab_utils/): each is a host–device sync on a GPU."""
    import sys
    from pathlib import Path

    import lab_utils

    root = str(Path(lab_utils.__file__).parent)
    calls: list[tuple[str, str, int]] = []
    for name in ("item", "tolist", "__float__", "__int__", "__bool__"):
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, _name=name, **kwargs):
            frame = sys._getframe(1)
            if frame.f_code.co_filename.startswith(root):
                calls.append((_name, frame.f_code.co_filename, frame.f_lineno))
            return _original(self, *args, **kwargs)
        monkeypatch.setattr(torch.Tensor, name, counted)
    return calls


def test_an_epoch_reads_the_device_a_handful_of_times_not_once_per_step(monkeypatch):
    """200 training batches: the NaN guard and the progress bar look every GUARD_EVERY batches
    (7 looks) and at the end, then the epoch's mean loss; evaluating 100 batches reads once."""
    from lab_utils.training import GUARD_EVERY, predict

    data = DataLoader(blobs(800), batch_size=4, shuffle=True)          # 200 batches
    model = mlp()
    opt = torch.optim.AdamW(model.parameters(), lr=0.01)
    calls = _count_host_syncs(monkeypatch)
    out = train_one_epoch(model, data, opt, progress=True)
    assert len(data) == 200 and len(calls) == 200 // GUARD_EVERY + 2, calls
    assert out["train_loss"] > 0
    calls.clear()
    evaluate(model, DataLoader(blobs(400, 1), batch_size=4))           # 100 batches
    assert len(calls) <= 1, calls                                       # the loss; predictions move as one tensor
    calls.clear()
    predict(model, DataLoader(blobs(400, 1), batch_size=4))
    assert calls == []


def test_a_nan_between_two_looks_is_caught_and_named(monkeypatch):
    """The guard reads the device every GUARD_EVERY batches, so a NaN at batch 40 of 50 is found at
    the end of the epoch — and the message still names batch 40."""
    model = mlp()

    def step(model, batch):
        x, y = batch
        step.calls += 1
        loss = nn.functional.cross_entropy(model(x), y)
        return {"loss": loss * float("nan") if step.calls == 40 else loss}
    step.calls = 0
    data = DataLoader(blobs(400), batch_size=8)                         # 50 batches
    with pytest.raises(FloatingPointError, match=r"loss became nan at epoch 3, batch 40 \(found when checking "
                                                 r"batches up to 50\)"):
        train_one_epoch(model, data, torch.optim.SGD(model.parameters(), lr=0.1), step, epoch=3, progress=False)
