"""callbacks.py: what a run does around its epochs."""
import callbacks
from hooks import HookBase


def test_training_curves_are_drawn_at_intervals_and_at_the_end(monkeypatch):
    drawn, clock = [], [0.0]
    monkeypatch.setattr(callbacks.plots, "plot_records", lambda directory: drawn.append((directory, clock[0])))
    monkeypatch.setattr(callbacks.time, "monotonic", lambda: clock[0])
    curves = callbacks.TrainingCurves("run", interval_s=60)
    curves.before_run(None)
    for epoch, now in enumerate([10.0, 30.0, 69.0, 75.0, 100.0, 130.0], start=1):
        clock[0] = now
        curves.after_epoch(None, epoch, {}, [], "")
    assert [at for _, at in drawn] == [69.0, 130.0]  # 60 s after the start, then 60 s after that drawing
    clock[0] = 140.0
    curves.after_run(None, None)  # nothing new since the last drawing: none
    assert len(drawn) == 2
    clock[0] = 150.0
    curves.after_epoch(None, 7, {}, [], "")
    curves.after_run(None, None)  # the last epoch is drawn at the end
    assert [at for _, at in drawn] == [69.0, 130.0, 150.0] and {d for d, _ in drawn} == {"run"}


def test_a_failed_run_is_drawn_at_its_end_unless_drawing_fails_too(monkeypatch, caplog):
    drawn = []
    monkeypatch.setattr(callbacks.plots, "plot_records", lambda directory: drawn.append(directory))
    curves = callbacks.TrainingCurves("run", interval_s=1e9)
    curves.after_epoch(None, 1, {}, [], "")
    curves.after_run(None, RuntimeError("loss is NaN"))
    assert drawn == ["run"]

    def full_disk(directory):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(callbacks.plots, "plot_records", full_disk)
    curves.after_epoch(None, 2, {}, [], "")
    curves.after_run(None, RuntimeError("disk full"))  # the run's own error stays the one reported
    assert "training_curves.png not redrawn after the failure: [Errno 28] No space left on device" in caplog.text


def test_eta_is_the_mean_time_per_unit_times_the_units_left(monkeypatch):
    from utils.logger import ProgressBar

    clock = [100.0]
    monkeypatch.setattr(ProgressBar, "clock", staticmethod(lambda: clock[0]))
    for disable in (False, True):  # a disabled bar (ranks other than 0) counts too
        bar = ProgressBar(total=10, initial=4, disable=disable)  # a resumed run: 4 of 10 epochs done before
        assert bar.eta_string() == "00m:00s"  # nothing measured yet
        clock[0] += 50.0
        bar.update()
        clock[0] += 70.0
        bar.update()
        assert bar.eta_string() == "04m:00s"  # 120 s for 2 epochs, 4 left
        bar.close()


def test_every_epoch_message_and_the_process_title_carry_the_time_left(tmp_path, monkeypatch):
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    import runtime
    from utils.logger import ProgressBar

    clock = [0.0]
    monkeypatch.setattr(ProgressBar, "clock", staticmethod(lambda: clock[0]))
    titles, messages = [], []
    monkeypatch.setattr(callbacks, "set_proctitle", titles.append)

    class Telegram:
        def send_message(self, msg, *args):
            messages.append(msg % args)

        def flush(self):
            pass

    class NinetySecondEpochs(HookBase):
        def before_epoch(self, trainer, epoch):
            clock[0] += 90.0

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = torch.nn.Parameter(torch.ones(1))

        def forward(self, example_dict):
            return {"output1": example_dict["input1"] * self.scale}

    class Loss(torch.nn.Module):
        def forward(self, model_dict, example_dict):
            return {"total_loss": ((model_dict["output1"] - 0.5) ** 2).mean()}

    data = DataLoader(TensorDataset(torch.rand(4, 3, 4, 4)), batch_size=2, collate_fn=lambda b: {
        "input1": torch.stack([x for (x,) in b])})
    config = runtime.TrainerConfig(save=str(tmp_path), total_epochs=4, model="Tiny", records={"csv": False})
    model_and_loss = runtime.ModelAndLoss(Model(), Loss())
    trainer = runtime.Trainer(config, model_and_loss, runtime.Loader(data, torch.device("cpu"), False), None,
                              torch.optim.SGD(model_and_loss.parameters(), lr=0.1),
                              hooks=[NinetySecondEpochs(), callbacks.Notifications(Telegram(), "t:Tiny on cpu"),
                                     callbacks.ProcessTitle("run")])
    trainer.run()
    assert titles == ["run finishes in 04m:30s", "run finishes in 03m:00s", "run finishes in 01m:30s",
                      "run finishes in 00m:00s"]
    assert [m.split(": ")[0] for m in messages[1:]] == [f"t:Tiny on cpu [{e}/4<{t}]" for e, t in
                                                         [(1, "04m:30s"), (2, "03m:00s"), (3, "01m:30s"),
                                                          (4, "00m:00s")]]

