"""callbacks.py: what a run does around its epochs."""
import callbacks


def test_training_curves_are_drawn_at_intervals_and_at_the_end(monkeypatch):
    drawn, clock = [], [0.0]
    monkeypatch.setattr(callbacks.plots, "plot_records", lambda directory: drawn.append((directory, clock[0])))
    monkeypatch.setattr(callbacks.time, "monotonic", lambda: clock[0])
    curves = callbacks.TrainingCurves("run", interval_s=60)
    curves.on_run_start(None)
    for epoch, now in enumerate([10.0, 30.0, 69.0, 75.0, 100.0, 130.0], start=1):
        clock[0] = now
        curves.on_epoch_end(None, epoch, {}, [], "")
    assert [at for _, at in drawn] == [69.0, 130.0]  # 60 s after the start, then 60 s after that drawing
    clock[0] = 140.0
    curves.on_run_end(None, None)  # nothing new since the last drawing: none
    assert len(drawn) == 2
    clock[0] = 150.0
    curves.on_epoch_end(None, 7, {}, [], "")
    curves.on_run_end(None, None)  # the last epoch is drawn at the end
    assert [at for _, at in drawn] == [69.0, 130.0, 150.0] and {d for d, _ in drawn} == {"run"}


def test_a_failed_run_is_drawn_at_its_end_unless_drawing_fails_too(monkeypatch, caplog):
    drawn = []
    monkeypatch.setattr(callbacks.plots, "plot_records", lambda directory: drawn.append(directory))
    curves = callbacks.TrainingCurves("run", interval_s=1e9)
    curves.on_epoch_end(None, 1, {}, [], "")
    curves.on_run_end(None, RuntimeError("loss is NaN"))
    assert drawn == ["run"]

    def full_disk(directory):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(callbacks.plots, "plot_records", full_disk)
    curves.on_epoch_end(None, 2, {}, [], "")
    curves.on_run_end(None, RuntimeError("disk full"))  # the run's own error stays the one reported
    assert "training_curves.png not redrawn after the failure: [Errno 28] No space left on device" in caplog.text
