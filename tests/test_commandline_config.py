"""--config=<file>: a run's args.json (and the original's) as a configuration, what it never carries over,
how the command line overrides it, YAML, _base_ files, ${NAME} folders and one-line errors."""
import json

import pytest

import commandline
from tests.helpers import run_main, script_args
from utils import jsonfile


def _write(path, content):
    path.write_text(json.dumps(content) if str(path).endswith(".json") else content)
    return str(path)


def _parse(*argv):
    return vars(commandline.parse_arguments(list(argv))[0])


@pytest.mark.parametrize("script", ["train_flowdbn_128_5_on_nah.sh", "test_flowdbn_192_7_on_su.sh"])
def test_the_originals_args_json_gives_the_same_arguments(tmp_path, script):
    reference = script_args("/data", "/experiments")[script]
    # The original's args.json: "None"/"true"/"false" strings (--checkpoint=None) written as null/true/false.
    config = tmp_path / "args.json"
    config.write_text(jsonfile.dumps(reference["args"]) + "\n")
    checkpoint = [f"--checkpoint={reference['args']['checkpoint']}"] if reference["args"]["checkpoint"] else []
    from_config = _parse(f"--config={config}", f"--save={reference['args']['save']}", *checkpoint)
    assert from_config == _parse(*reference["argv"])


def test_none_true_false_strings_read_back_to_the_same_values(tmp_path):
    flags = {"seed": "none", "training_dataset_random_flips": "false",
             "training_dataset_random_reverse": "TRUE", "training_dataset_random_crop": "none"}
    common = ["--save=run", "--training_dataset=GoProNahTrain", "--training_dataset_root=/data"]
    config = tmp_path / "args.json"
    config.write_text(jsonfile.dumps(flags) + "\n")
    assert '"seed": null' in config.read_text() and '"training_dataset_random_flips": false' in config.read_text()
    parsed = _parse(f"--config={config}", *common)
    assert parsed == _parse(*common, *[f"--{key}={value}" for key, value in flags.items()])
    assert (parsed["seed"], parsed["training_dataset_random_flips"], parsed["training_dataset_random_reverse"],
            parsed["training_dataset_random_crop"]) == (None, False, True, None)


def test_a_config_never_carries_the_run_folder_checkpoint_or_machine(tmp_path):
    config = _write(tmp_path / "args.json", {
        "model": "DBN", "save": str(tmp_path / "old"), "resume": str(tmp_path / "old"),
        "checkpoint": str(tmp_path / "old" / "x.ckpt"),
        "checkpoint_mode": "best", "cuda": False, "start_epoch": 7, "total_epochs": 9,
        "actual_device": "gpu:0", "proctitle_name": "Gandalf", "non_default_args": {"model": "DBN"}})
    parsed = _parse(f"--config={config}", "--save=new")
    assert parsed == _parse("--model=DBN", "--total_epochs=9", "--save=new")
    assert parsed["checkpoint"] is None and parsed["start_epoch"] == 1 and "checkpoint_mode" not in parsed


def test_command_line_flags_override_the_config(tmp_path):
    groups = [{"params": "*bias*", "lr": 0.01}, {"params": "*conv1*", "lr": 0.1}]
    config = _write(tmp_path / "c.json", {"model": "DBN", "optimizer": "Adam", "optimizer_lr": 0.005,
                                          "total_epochs": 9, "optimizer_group": groups})
    assert _parse(f"--config={config}", "--save=x")["optimizer_group"] == groups
    # A repeatable flag on the command line replaces the config's list; a later flag wins over the file's.
    parsed = _parse(f"--config={config}", "--save=x", "--optimizer_group={'params': '*', 'lr': 1}",
                    "--total_epochs=3")
    assert parsed["optimizer_group"] == [{"params": "*", "lr": 1}] and parsed["total_epochs"] == 3
    assert parsed["optimizer_lr"] == 0.005
    # `--config FILE` (two tokens) works as well.
    assert _parse("--config", config, "--save=x") == _parse(f"--config={config}", "--save=x")


def test_another_class_on_the_command_line_drops_the_configs_flags_of_its_class(tmp_path):
    config = _write(tmp_path / "c.json", {
        "model": "FlowDBN", "model_pretrained_pwcnet": "/p.ckpt", "optimizer": "Adam", "optimizer_lr": 0.005,
        "optimizer_weight_decay": 0.1, "validation_dataset": "GoProNahTest", "validation_dataset_root": "/d",
        "validation_keys": ["psnr"], "validation_modes": ["max"], "total_epochs": 9})
    parsed = _parse(f"--config={config}", "--save=x", "--model=DBN", "--optimizer=SGD")
    # SGD starts from its own defaults (lr 0.001, no weight decay), not from Adam's settings in the file.
    assert parsed == _parse("--save=x", "--model=DBN", "--optimizer=SGD", "--total_epochs=9",
                            "--validation_dataset=GoProNahTest", "--validation_dataset_root=/d",
                            "--validation_keys=psnr", "--validation_modes=max")
    # The same class again keeps them. Another validation set needs its own root (a class flag: dropped too)
    # and keeps the validation keys and modes (not flags of the dataset's class).
    assert _parse(f"--config={config}", "--save=x", "--optimizer=Adam")["optimizer_weight_decay"] == 0.1
    parsed = _parse(f"--config={config}", "--save=x", "--validation_dataset=GoProSuQuantitativeValid",
                    "--validation_dataset_root=/su")
    assert (parsed["validation_dataset_root"], parsed["validation_keys"], parsed["validation_modes"]) == \
        ("/su", ["psnr"], ["max"])


def test_yaml_base_files_and_environment_folders(tmp_path, monkeypatch):
    monkeypatch.setenv("DATA_HOME", "/datasets")
    _write(tmp_path / "base.yaml", "model: DBN\ntotal_epochs: 9\ntraining_dataset: GoProNahTrain\n"
                                   "training_dataset_root: ${DATA_HOME}/GOPRO_Large/\n")
    _write(tmp_path / "sub" / "child.json" if (tmp_path / "sub").mkdir() is None else None,
           {"_base_": "../base.yaml", "total_epochs": 5, "training_dataset_random_crop": [64, 64]})
    parsed = _parse(f"--config={tmp_path / 'sub' / 'child.json'}", "--save=x")
    assert parsed == _parse("--save=x", "--model=DBN", "--total_epochs=5", "--training_dataset=GoProNahTrain",
                            "--training_dataset_root=/datasets/GOPRO_Large/", "--training_dataset_random_crop=64,64")


def test_a_new_run_from_a_runs_args_json_writes_into_its_own_folder(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    config = _write(tmp_path / "args.json", {"save": str(old), "visualizer": "GoProInference",
                                             "visualizer_save": str(old / "inference"), "model": "DBN"})
    assert _parse(f"--config={config}", f"--save={new}")["visualizer_save"] == str(new / "inference")


@pytest.mark.parametrize("content,message", [
    ({"modle": "DBN"}, "unknown key 'modle'"),
    ({"model": "DBN", "model_div_flow": 0.05},
     "unknown key 'model_div_flow' (--model_div_flow is not a flag of --model=DBN; it belongs to FlowNet1S, PWCNet)"),
    ({"model": "DNB"}, "model='DNB' is not registered (registered: DBN, FlowDBN, FlowNet1S, LeNet, PWCNet)"),
    ({"training_dataset_root": "${NOT_SET_ANYWHERE}/x"}, "key 'training_dataset_root' uses ${NOT_SET_ANYWHERE}, "
                                                         "which is not set"),
    ({"_base_": "c.json"}, "its _base_ chain comes back to it"),
    ([1, 2], "expected a mapping of flag names to values"),
])
def test_a_bad_config_is_one_line_naming_the_file(tmp_path, content, message):
    config = _write(tmp_path / "c.json", content)
    result = run_main(f"--config={config}", f"--save={tmp_path / 'run'}")
    assert result.returncode == 2 and result.stderr.splitlines() == [f"main.py: error: --config={config}: {message}"]
    assert not (tmp_path / "run").exists()


def test_an_unreadable_config_is_one_line(tmp_path):
    (tmp_path / "c.json").write_text("{\"model\": ")
    result = run_main(f"--config={tmp_path / 'c.json'}", f"--save={tmp_path}")
    assert result.returncode == 2 and result.stderr.startswith(f"main.py: error: --config={tmp_path / 'c.json'}: "
                                                               "not valid JSON (Expecting value: line 1")
    result = run_main(f"--config={tmp_path / 'missing.yaml'}", f"--save={tmp_path}")
    assert result.stderr.strip() == (f"main.py: error: --config={tmp_path / 'missing.yaml'}: cannot read it "
                                     "(No such file or directory)")


@pytest.mark.slow
def test_a_runs_args_json_reruns_it_bit_identically(nah_root, tmp_path):
    import torch

    from tests.test_main import _dbn_flags

    first, second = tmp_path / "first", tmp_path / "second"
    assert run_main(*_dbn_flags(nah_root, first, epochs=1, validation=False)).returncode == 0
    result = run_main(f"--config={first / 'args.json'}", f"--save={second}", "--cuda=false")
    assert result.returncode == 0, result.stderr[-2000:]
    stored = [json.loads((run / "args.json").read_text()) for run in (first, second)]
    assert stored[1] == {**stored[0], "save": str(second)}
    weights = [torch.load(run / "checkpoint_latest_.ckpt", weights_only=True)["state_dict"] for run in (first, second)]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][key], weights[1][key]) for key in weights[0])
