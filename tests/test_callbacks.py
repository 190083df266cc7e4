"""callbacks.py: what a run does around its epochs."""
import callbacks


def test_training_curves_are_drawn_after_the_first_epoch_then_at_intervals_and_at_the_end(monkeypatch):
    drawn, clock = [], [0.0]
    monkeypatch.setattr(callbacks.plots, "plot_records", lambda directory: drawn.append((directory, clock[0])))
    monkeypatch.setattr(callbacks.time, "monotonic", lambda: clock[0])
    curves = callbacks.TrainingCurves("run", interval_s=60)
    for epoch, now in enumerate([10.0, 30.0, 69.0, 75.0, 80.0], start=1):
        clock[0] = now
        curves.on_epoch_end(None, epoch, {}, [], "")
    assert [at for _, at in drawn] == [10.0, 75.0]  # epoch 1, then the first epoch 60 s after it
    clock[0] = 90.0
    curves.on_run_end(None, None)
    assert [at for _, at in drawn] == [10.0, 75.0, 90.0] and {d for d, _ in drawn} == {"run"}
    curves.on_run_end(None, None)  # nothing new since: no drawing
    assert len(drawn) == 3


def test_a_failed_run_is_not_drawn_again_at_its_end(monkeypatch):
    drawn = []
    monkeypatch.setattr(callbacks.plots, "plot_records", lambda directory: drawn.append(directory))
    curves = callbacks.TrainingCurves("run", interval_s=1e9)
    curves.on_epoch_end(None, 1, {}, [], "")
    curves.on_epoch_end(None, 2, {}, [], "")
    curves.on_run_end(None, RuntimeError("disk full"))
    assert drawn == ["run"]
