"""The classification path (spec §12-16): LeNet, ClassificationLoss, the subset helper, MNIST and CIFAR-10
read from tiny files in their real formats (IDX, gzip IDX, the original's .pt, CIFAR-10 python pickles)."""
import gzip
import logging
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from datasets.cifar10 import Cifar10Train, Cifar10Valid, per_image_standardization, read_batch
from datasets.mnist import MnistTrain, MnistValid, read_idx
from datasets.sampling import deterministic_indices
from losses.classification import ClassificationLoss
from models.lenet import LeNet
from tools.synthetic_mnist import write_idx


# ------------------------------------------------------------------------------------------------ LeNet
def test_lenet_state_dict_parameter_count_and_init(caplog):
    with caplog.at_level(logging.INFO):
        model = LeNet()
    state = model.state_dict()
    assert [(key, tuple(value.shape)) for key, value in state.items()] == [
        ("peter", (1,)), ("conv1.weight", (32, 1, 5, 5)), ("conv1.bias", (32,)), ("conv2.weight", (64, 32, 5, 5)),
        ("conv2.bias", (64,)), ("fc1.weight", (1024, 1024)), ("fc1.bias", (1024,)), ("fc2.weight", (10, 1024)),
        ("fc2.bias", (10,))]
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 1111947
    assert state["peter"].item() == 1.0 and not state["conv1.bias"].any() and not state["conv2.bias"].any()
    # MSRA fan_out: std sqrt(2/800) = 0.05 and sqrt(2/1600); Linear layers keep PyTorch's uniform ±1/32.
    assert abs(state["conv1.weight"].std().item() - 0.05) < 0.005
    assert abs(state["conv2.weight"].std().item() - 0.0354) < 0.001
    assert state["fc1.weight"].abs().max().item() <= 1 / 32 and state["fc2.bias"].abs().max().item() <= 1 / 32
    assert "Found uninitialized layer of type 'Linear' [1059850 params]" in caplog.text


def test_lenet_forward_is_the_brute_force_computation():
    model = LeNet()
    x = torch.rand(3, 1, 28, 28)
    model.eval()
    output = model({"input1": x})["output1"]
    # By hand: convolutions as unfolded matrix products, pooling as the maximum of four shifted views.
    def conv_relu_pool(y, conv):
        k = conv.weight.shape[-1]
        columns = F.unfold(y, k)  # (B, C*k*k, L)
        out = (conv.weight.reshape(conv.out_channels, -1) @ columns + conv.bias[:, None])
        size = y.shape[-1] - k + 1
        out = out.reshape(y.shape[0], conv.out_channels, size, size).clamp(min=0)
        return torch.stack([out[..., i::2, j::2] for i in (0, 1) for j in (0, 1)]).amax(0)

    with torch.no_grad():
        hidden = conv_relu_pool(conv_relu_pool(x, model.conv1), model.conv2).reshape(3, 1024)
        logits = (hidden @ model.fc1.weight.t() + model.fc1.bias).clamp(min=0) @ model.fc2.weight.t() + model.fc2.bias
        expected = logits - logits.exp().sum(1, keepdim=True).log()
    assert output.shape == (3, 10)
    torch.testing.assert_close(output, expected, rtol=1e-5, atol=1e-5)
    assert torch.allclose(output.exp().sum(1), torch.ones(3))


def test_lenet_dropout_only_in_training_and_peter_unused():
    model = LeNet()
    x = {"input1": torch.rand(2, 1, 28, 28)}
    model.eval()
    assert torch.equal(model(x)["output1"], model(x)["output1"])
    model.train()
    assert not torch.equal(model(x)["output1"], model(x)["output1"])
    model(x)["output1"].sum().backward()
    assert model.peter.grad is None and model.conv1.weight.grad is not None
    with pytest.raises(ValueError, match=r"needs input1 of shape \(B, 1, 28, 28\) \(MNIST\), got \(2, 3, 32, 32\)"):
        model({"input1": torch.rand(2, 3, 32, 32)})


# ------------------------------------------------------------------------------------- ClassificationLoss
def test_classification_loss_against_brute_force():
    scores = torch.tensor([[0.1, 0.5, 0.2, 0.9],   # target 3: rank 1
                           [0.8, 0.1, 0.7, 0.0],   # target 2: rank 2
                           [0.3, 0.2, 0.1, 0.4],   # target 1: rank 3
                           [0.0, 0.1, 0.2, 0.3],   # target 0: rank 4
                           [0.9, 0.0, 0.1, 0.2]])  # target 0: rank 1
    target = torch.tensor([3, 2, 1, 0, 0])
    result = ClassificationLoss(topk=[1, 2, 3])({"output1": scores}, {"target1": target})
    assert list(result) == ["xe", "top1", "top2", "top3"]
    expected_xe = -sum(scores[i, t] - scores[i].exp().sum().log() for i, t in enumerate(target.tolist())) / 5
    torch.testing.assert_close(result["xe"], expected_xe)
    assert result["xe"].dim() == 0
    for key, percent in (("top1", 40.0), ("top2", 60.0), ("top3", 80.0)):
        assert result[key].shape == (1,) and result[key].item() == pytest.approx(percent)
        assert not result[key].requires_grad
    summed = ClassificationLoss(reduction="sum")({"output1": scores}, {"target1": target})["xe"]
    torch.testing.assert_close(summed, expected_xe * 5)
    per_example = ClassificationLoss(reduction="none")({"output1": scores}, {"target1": target})["xe"]
    assert per_example.shape == (5,)


@pytest.mark.parametrize("batch_size", [1, 2, 7, 64])
def test_classification_loss_any_batch_size_matches_counting(batch_size):
    """The original's view() crashed for k >= 2 and B >= 2 on PyTorch >= 1.7 (spec §13)."""
    scores = torch.randn(batch_size, 10)
    target = torch.randint(0, 10, (batch_size,))
    result = ClassificationLoss(topk=(1, 5))({"output1": scores}, {"target1": target})
    ranks = [(scores[i] > scores[i, t]).sum().item() for i, t in enumerate(target.tolist())]  # no ties (randn)
    for k in (1, 5):
        assert result[f"top{k}"].item() == pytest.approx(100.0 * sum(r < k for r in ranks) / batch_size)


def test_classification_loss_settings_are_checked():
    with pytest.raises(ValueError, match="--loss_reduction=avg: expected one of mean, sum, none"):
        ClassificationLoss(reduction="avg")
    with pytest.raises(ValueError, match=r"--loss_topk=\[0\]"):
        ClassificationLoss(topk=[0])
    with pytest.raises(ValueError, match="top11 needs at least that many classes, the model gives 10"):
        ClassificationLoss(topk=[1, 11])({"output1": torch.zeros(2, 10)}, {"target1": torch.zeros(2).long()})


def test_loss_topk_is_settable_from_the_command_line():
    import commandline

    args, _ = commandline.parse_arguments(["--loss=ClassificationLoss", "--loss_topk=[1, 5]"])
    assert commandline.instance_from_args(args, "loss", args=args).topk == (1, 5)


# ------------------------------------------------------------------------------------------- subset helper
def test_deterministic_indices_match_the_reference_vectors():
    assert deterministic_indices(5, 10, 0) == [1, 3, 5, 7, 8]
    assert deterministic_indices(5, 10, 1) == [5, 6, 7, 8, 9]
    assert deterministic_indices(10, 60000, 0) == [4076, 6584, 6641, 7211, 24413, 34757, 42060, 42772, 50822, 51319]
    assert deterministic_indices(10, 10000, 1) == [2025, 3061, 5676, 6834, 7879, 8390, 8573, 8709, 8801, 9043]
    assert deterministic_indices(20, 10, 0) == list(range(10))


# ------------------------------------------------------------------------------------------------- MNIST
def _digits(count: int, offset: int = 0):
    images = (np.arange(count * 784).reshape(count, 28, 28) * 7 + offset).astype(np.uint8)
    labels = (np.arange(count) * 3 % 10).astype(np.uint8)
    return images, labels


def _write_split(folder, prefix: str, count: int, gz: bool, offset: int = 0):
    images, labels = _digits(count, offset)
    suffix = ".gz" if gz else ""
    write_idx(str(folder / f"{prefix}-images-idx3-ubyte{suffix}"), images)
    write_idx(str(folder / f"{prefix}-labels-idx1-ubyte{suffix}"), labels)
    return images, labels


@pytest.mark.parametrize("layout,gz", [("raw", True), ("raw", False), ("MNIST/raw", True), ("", False)])
def test_mnist_reads_idx_files_in_every_layout(tmp_path, layout, gz):
    folder = tmp_path / layout if layout else tmp_path
    images, labels = _write_split(folder, "train", 12, gz)
    test_images, test_labels = _write_split(folder, "t10k", 5, gz, offset=3)
    train = MnistTrain(root=str(tmp_path))
    assert len(train) == 12
    example = train[4]
    assert sorted(example) == ["basename", "index", "input1", "target1"]
    assert example["input1"].dtype == torch.float32 and example["input1"].shape == (1, 28, 28)
    assert torch.equal(example["input1"][0], torch.from_numpy(images[4]).float() / 255)
    assert example["target1"].dtype == torch.int64 and example["target1"].dim() == 0
    assert example["target1"].item() == labels[4] == 2
    assert (example["index"], example["basename"]) == (4, "img-00004")
    valid = MnistValid(root=str(tmp_path))
    assert len(valid) == 5 and valid[1]["target1"].item() == test_labels[1]
    assert torch.equal(valid[1]["input1"][0], torch.from_numpy(test_images[1]).float() / 255)


def test_mnist_reads_the_originals_processed_files_and_subsets(tmp_path):
    images, labels = _digits(10)
    (tmp_path / "processed").mkdir()
    torch.save((torch.from_numpy(images), torch.from_numpy(labels).long()), tmp_path / "processed" / "training.pt")
    torch.save((torch.from_numpy(images[:10]), torch.from_numpy(labels[:10]).long()),
               tmp_path / "processed" / "test.pt")
    train = MnistTrain(root=str(tmp_path), num_examples=5)  # positions [1, 3, 5, 7, 8] (seed 0)
    valid = MnistValid(root=str(tmp_path), num_examples=5)  # positions [5, 6, 7, 8, 9] (seed 1)
    assert [train[i]["target1"].item() for i in range(5)] == [labels[i] for i in (1, 3, 5, 7, 8)]
    assert [valid[i]["target1"].item() for i in range(5)] == [labels[i] for i in (5, 6, 7, 8, 9)]
    assert torch.equal(train[1]["input1"][0], torch.from_numpy(images[3]).float() / 255)
    assert (train[1]["index"], train[1]["basename"]) == (1, "img-00001")  # positions in the subset
    assert len(MnistTrain(root=str(tmp_path), num_examples=0)) == 10  # 0 and negative: all
    batch = torch.utils.data.default_collate([train[0], train[1]])
    assert batch["input1"].shape == (2, 1, 28, 28) and batch["target1"].tolist() == [labels[1], labels[3]]
    assert batch["index"].tolist() == [0, 1] and batch["basename"] == ["img-00000", "img-00001"]


def test_mnist_missing_and_malformed_files_are_one_line(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no MNIST train files in '.*': expected train-images-idx3-ubyte"
                                                r"\[.gz\] and train-labels-idx1-ubyte\[.gz\] in raw/"):
        MnistTrain(root=str(tmp_path))
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        MnistTrain(root=str(tmp_path / "nowhere"))
    raw = tmp_path / "raw"
    _write_split(raw, "train", 3, gz=False)
    (raw / "train-images-idx3-ubyte").write_bytes((raw / "train-images-idx3-ubyte").read_bytes()[:-5])
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte': 2347 bytes of data, its header announces 2352"):
        MnistTrain(root=str(tmp_path))
    write_idx(str(raw / "train-images-idx3-ubyte"), _digits(3)[1])  # a labels file where images belong
    with pytest.raises(ValueError, match=r"not an MNIST IDX file of images \(magic 2051\)"):
        MnistTrain(root=str(tmp_path))
    write_idx(str(raw / "train-images-idx3-ubyte"), _digits(4)[0])
    with pytest.raises(ValueError, match="expected 4 integer labels"):
        MnistTrain(root=str(tmp_path))
    (raw / "t10k-images-idx3-ubyte.gz").write_bytes(b"not gzip")
    write_idx(str(raw / "t10k-labels-idx1-ubyte.gz"), _digits(3)[1])
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte.gz': cannot read it"):
        MnistValid(root=str(tmp_path))
    (tmp_path / "processed").mkdir()
    torch.save({"images": torch.zeros(1)}, tmp_path / "processed" / "test.pt")
    with pytest.raises(ValueError, match=r"test.pt': expected a tuple \(images, labels\) of two tensors"):
        MnistValid(root=str(tmp_path))


def test_mnist_processed_file_cannot_run_code(tmp_path):
    class Exploit:
        def __reduce__(self):
            return (print, ("pwned",))

    (tmp_path / "processed").mkdir()
    with open(tmp_path / "processed" / "training.pt", "wb") as handle:
        pickle.dump(Exploit(), handle, protocol=2)
    with pytest.raises(ValueError, match="training.pt': cannot load it"):
        MnistTrain(root=str(tmp_path))


def test_read_idx_gz_equals_plain(tmp_path):
    images, _ = _digits(2)
    plain = read_idx(write_idx(str(tmp_path / "a"), images), 2051)
    with gzip.open(tmp_path / "b.gz", "wb") as handle:
        handle.write((tmp_path / "a").read_bytes())
    assert torch.equal(plain, read_idx(str(tmp_path / "b.gz"), 2051)) and plain.shape == (2, 28, 28)


# ---------------------------------------------------------------------------------------------- CIFAR-10
def write_cifar(root, train_per_batch: int = 2, test: int = 3):
    """cifar-10-batches-py with pickles as CIFAR-10 ships them (protocol 2, a dict of data/labels/filenames)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    batches = {}
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        count = test if name == "test_batch" else train_per_batch
        data = rng.integers(0, 256, (count, 3072), dtype=np.uint8)
        labels = [(i + j) % 10 for j in range(count)]
        batches[name] = (data, labels)
        with open(folder / name, "wb") as handle:
            pickle.dump({"batch_label": f"batch {i}", "labels": labels, "data": data,
                         "filenames": [f"f{j}.png" for j in range(count)]}, handle, protocol=2)
    return batches


def test_cifar10_reads_batches_without_augmentation_exactly(tmp_path):
    batches = write_cifar(tmp_path)
    valid = Cifar10Valid(root=str(tmp_path))
    assert len(valid) == 3
    data, labels = batches["test_batch"]
    example = valid[2]
    assert sorted(example) == ["basename", "index", "input1", "target1"]
    expected = torch.from_numpy(data[2].reshape(3, 32, 32)).float() / 255  # planes R, G, B, row-major
    assert torch.equal(example["input1"], expected)
    assert (example["target1"], example["index"], example["basename"]) == (labels[2], 2, "img-00002")
    train = Cifar10Train(root=str(tmp_path), photometric_augmentations=None, affine_augmentations=None,
                         random_flip=False)
    assert len(train) == 10  # five batches of 2, in order
    assert torch.equal(train[9]["input1"] * 255, torch.from_numpy(batches["data_batch_5"][0][1].reshape(3, 32, 32))
                       .float())
    assert [train[i]["target1"] for i in range(10)] == sum((batches[f"data_batch_{k}"][1] for k in range(1, 6)), [])


def test_cifar10_intended_pipeline_runs_with_every_stage(tmp_path):
    write_cifar(tmp_path)
    train = Cifar10Train(root=str(tmp_path / "cifar-10-batches-py"), add_noise=True, normalize_colors=True,
                         crop=[24, 24], num_examples=4)
    assert len(train) == 4
    example = train[0]
    assert example["input1"].shape == (3, 24, 24) and example["input1"].dtype == torch.float32
    standardized = Cifar10Valid(root=str(tmp_path), per_image_std=True, crop=[16])[0]["input1"]
    assert standardized.shape == (3, 16, 16)
    torch.testing.assert_close(standardized.mean(dim=(1, 2)), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(standardized.reshape(3, -1).std(dim=1), torch.ones(3))
    flat = torch.ones(3, 4, 4)  # a constant image: std clamped to 1/sqrt(16)
    assert torch.equal(per_image_standardization(flat), torch.zeros(3, 4, 4))


def test_cifar10_refuses_code_and_malformed_batches(tmp_path):
    write_cifar(tmp_path)
    path = tmp_path / "cifar-10-batches-py" / "test_batch"

    class Exploit:
        def __reduce__(self):
            return (print, ("pwned",))

    path.write_bytes(pickle.dumps({"data": Exploit()}, protocol=2))
    with pytest.raises(ValueError, match=r"test_batch': not a CIFAR-10 python batch \(refusing to load .*print"):
        read_batch(str(path))
    path.write_bytes(pickle.dumps({"data": np.zeros((2, 100), np.uint8), "labels": [0, 1]}, protocol=2))
    with pytest.raises(ValueError, match=r"'data' must be a uint8 array \(N, 3072\), got uint8 \[2, 100\]"):
        Cifar10Valid(root=str(tmp_path))
    path.unlink()
    with pytest.raises(FileNotFoundError, match="test_batch' is missing"):
        Cifar10Valid(root=str(tmp_path))
    with pytest.raises(ValueError, match="affine_augmentations: unknown keys"):
        Cifar10Train(root=str(tmp_path), affine_augmentations={"rotate": 3})
