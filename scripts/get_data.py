"""Download, check and unpack the paper's datasets and the released prewarping networks.

    python scripts/get_data.py gopro_nah --root $DATASETS_HOME            # -> $DATASETS_HOME/GOPRO_Large
    python scripts/get_data.py gopro_su --root $DATASETS_HOME             # -> .../DeepVideoDeblurring_Dataset
    python scripts/get_data.py prewarping_networks --root $EXPERIMENTS_HOME   # -> .../prewarping_networks
    python scripts/get_data.py flyingchairs --root $DATASETS_HOME         # -> .../FlyingChairs_release
    python scripts/get_data.py sintel --root $DATASETS_HOME               # -> .../MPI-Sintel-complete
    python scripts/get_data.py mnist --root $DATASETS_HOME                # -> .../mnist/raw/*-ubyte.gz
    python scripts/get_data.py cifar10 --root $DATASETS_HOME              # -> .../cifar-10-batches-py
    python scripts/get_data.py gopro_nah --root $DATASETS_HOME --verify [--deep]   # check a tree only

--root defaults to $DATASETS_HOME, else ~/Datasets ($EXPERIMENTS_HOME, else ~/Experiments, for
prewarping_networks). `--url` replaces the built-in address (a mirror, a local copy: any http(s) or file
address). Downloads resume after an interruption (run the same command again), land under their final
name only when complete, and are checked before they are unpacked (MNIST and CIFAR-10: by the MD5
checksums torchvision's dataset definitions give); the unpacked tree is checked against
the layout the dataset classes read, and the archive is removed afterwards unless --keep_archive. A second run for the
same archive stops at once naming the first (`<archive>.lock`). Every failure ends with one line that says
what to do.
"""
import argparse
import dataclasses
import hashlib
import os
import sys
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from datasets import layout  # noqa: E402
from datasets.layout import LAYOUTS  # noqa: E402
from datasets.paired_frames import TEMPLATE_DEFAULTS  # noqa: E402
from utils.download import ArchiveLock, DataError, check_archive, fetch, unpack  # noqa: E402

# --root when not given: the launch scripts' variables and defaults.
ROOT_VARIABLES = {"prewarping_networks": ("EXPERIMENTS_HOME", "~/Experiments")}
DEFAULT_ROOT = ("DATASETS_HOME", "~/Datasets")


@dataclasses.dataclass(frozen=True)
class Source:
    """One downloadable item: its archive, where it comes from and the folder it becomes under --root."""

    archive: str
    urls: Tuple[str, ...]
    folder: str
    marker: Callable[[Path], bool]  # true for the unpacked folder that becomes `folder` (a dataset's: its LAYOUT's)
    size: str
    terms: str
    extra: Tuple[Tuple[str, str], ...] = ()  # (url, file name in the folder) of separate small files


def _has_files(pattern: str) -> Callable[[Path], bool]:
    return lambda folder: any(folder.glob(pattern))


SOURCES = {
    "gopro_nah": Source(
        "GOPRO_Large.zip",
        # Nah et al.'s own link is the Google-Drive file 1H0PIXvJH4c40pk7ou6nAwoxuR4Qh_Sa2, which needs a
        # browser to confirm the download; the original README's mirror is a plain address.
        ("https://dl.dropboxusercontent.com/s/rwlliuyk513bwum/GOPRO_Large.zip",),
        LAYOUTS["gopro_nah"].folder, LAYOUTS["gopro_nah"].unpacked, "about 8.9 GB",
        "Nah et al., CVPR 2017 (https://seungjunnah.github.io/Datasets/gopro): CC BY 4.0; cite the paper."),
    "gopro_su": Source(
        "DeepVideoDeblurring_Dataset.zip",
        ("http://www.cs.ubc.ca/labs/imager/tr/2017/DeepVideoDeblurring/DeepVideoDeblurring_Dataset.zip",
         "https://dl.dropboxusercontent.com/s/fxied15l3xlxm79/DeepVideoDeblurring_Dataset.zip"),
        LAYOUTS["gopro_su"].folder, LAYOUTS["gopro_su"].unpacked, "several GB (not published)",
        "Su et al., CVPR 2017 (http://www.cs.ubc.ca/labs/imager/tr/2017/DeepVideoDeblurring/): for research; "
        "cite the paper."),
    "prewarping_networks": Source(
        "prewarping_networks.zip",
        ("https://dl.dropboxusercontent.com/s/h9k5oasjoayyfh1/prewarping_networks.zip",),
        "prewarping_networks", _has_files("*.ckpt"), "(size not published)",
        "Gast & Roth, ICCVW 2019: released with the original framework (Apache-2.0)."),
    "flyingchairs": Source(
        "FlyingChairs.zip",
        ("https://lmb.informatik.uni-freiburg.de/data/FlyingChairs/FlyingChairs.zip",),
        LAYOUTS["flyingchairs"].folder, LAYOUTS["flyingchairs"].unpacked, "about 31 GB",
        "Dosovitskiy et al., ICCV 2015 (https://lmb.informatik.uni-freiburg.de/resources/datasets/"
        "FlyingChairs.en.html): research purposes only; cite the paper.",
        extra=(("https://lmb.informatik.uni-freiburg.de/resources/datasets/FlyingChairs/FlyingChairs_train_val.txt",
                "FlyingChairs_train_val.txt"),)),
    "sintel": Source(
        "MPI-Sintel-complete.zip",
        ("http://files.is.tue.mpg.de/sintel/MPI-Sintel-complete.zip",),
        LAYOUTS["sintel"].folder, LAYOUTS["sintel"].unpacked, "about 5.3 GB",
        "Butler et al., ECCV 2012 (http://sintel.is.tue.mpg.de): see its terms of use; the film is (c) Blender "
        "Foundation, CC BY 3.0."),
}


@dataclasses.dataclass(frozen=True)
class ChecksummedSource:
    """A dataset checked file by file against MD5 checksums: single files downloaded from a base address
    (MNIST), or one archive unpacked into the folder (CIFAR-10)."""

    folder: str  # under --root
    urls: Tuple[str, ...]  # the base address of `files` (ending in /), or the archive's address
    files: Tuple[Tuple[str, str], ...]  # (path below `folder`, MD5): what is downloaded or unpacked and checked
    size: str
    terms: str
    archive: Optional[Tuple[str, str]] = None  # (file name under --root, MD5) when the files come in an archive


# Addresses and checksums as torchvision's dataset definitions give them (torchvision.datasets.MNIST, CIFAR10);
# the original's MNIST address (yann.lecun.com) often refuses downloads.
CHECKSUMMED = {
    "mnist": ChecksummedSource(
        "mnist", ("https://ossci-datasets.s3.amazonaws.com/mnist/",),
        (("raw/train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
         ("raw/train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
         ("raw/t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
         ("raw/t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c")),
        "about 11 MB", "LeCun, Cortes and Burges (http://yann.lecun.com/exdb/mnist/): CC BY-SA 3.0; cite LeCun "
                       "et al. 1998."),
    "cifar10": ChecksummedSource(
        "cifar-10-batches-py", ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",),
        (("data_batch_1", "c99cafc152244af753f735de768cd75f"), ("data_batch_2", "d4bba439e000b95fd0a9bffe97cbabec"),
         ("data_batch_3", "54ebc095f3ab1f0389bbae665268c751"), ("data_batch_4", "634d18415352ddfa80567beed471001a"),
         ("data_batch_5", "482c414d41f54cd18b22e5b47cb7c3cb"), ("test_batch", "40351d587109b95175f43aff81a1287e")),
        "about 170 MB", "Krizhevsky 2009 (https://www.cs.toronto.edu/~kriz/cifar.html): cite the tech report "
                        "\"Learning Multiple Layers of Features from Tiny Images\".",
        archive=("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a")),
}


def md5sum(path: Path) -> str:
    """The MD5 hex digest of a file, read in chunks."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _checked_download(url: str, destination: Path, md5: str, progress: bool) -> None:
    """fetch(), then the MD5: a file that differs is removed with one line (a later run downloads it afresh)."""
    fetch(url, destination, progress)
    if md5sum(destination) != md5:
        destination.unlink()
        raise DataError(f"'{destination}' from {url} does not have the published MD5 checksum {md5} (removed it: run "
                        f"the same command again to download it afresh, or pass another address with --url)")


def download_checksummed(name: str, root: Path, urls: Sequence[str], keep_archive: bool, progress: bool) -> Path:
    """Fetch MNIST's files or CIFAR-10's archive under `root`, checked by MD5; returns the dataset folder."""
    source = CHECKSUMMED[name]
    target = root / source.folder
    if source.archive is None:
        base = urls[0] if urls[0].endswith("/") else urls[0] + "/"
        for path, md5 in source.files:
            if (target / path).exists():  # kept as it is (the check below compares it): never replaced here
                print(f"{target / path} exists already: checking it (move it away to download again)")
                continue
            (target / path).parent.mkdir(parents=True, exist_ok=True)
            with ArchiveLock(target / path):  # one run per file: the second stops naming the first
                _checked_download(base + Path(path).name, target / path, md5, progress)
        return target
    if target.exists():
        print(f"{target} exists already: checking it (move it away to download again)")
        return target
    filename, md5 = source.archive
    archive = root / filename
    with ArchiveLock(archive):
        if not target.exists():
            _checked_download(urls[0], archive, md5, progress)
            check_archive(archive)
            names = {Path(path).name for path, _ in source.files}
            unpack(archive, target, _arrange(Source(filename, tuple(urls), source.folder,
                                                    lambda folder: names <= {p.name for p in folder.iterdir()},
                                                    source.size, source.terms), archive))
            if not keep_archive:
                archive.unlink()
    return target


def verify_checksummed(name: str, folder: Path) -> Tuple[List[str], List[str], str]:
    """Problems (a file missing or unreadable by its dataset class), notes (a file that differs from the
    published one, e.g. generated data) and the verdict line."""
    from datasets import cifar10, mnist

    source = CHECKSUMMED[name]
    problems, notes = [], []
    for path, md5 in source.files:
        file = folder / path
        if not file.is_file():
            problems.append(f"'{file}' is missing (run `python scripts/get_data.py {name} --root {folder.parent}`)")
            continue
        try:
            if name == "mnist":
                mnist.read_idx(str(file), mnist.IMAGES_MAGIC if "images" in path else mnist.LABELS_MAGIC)
            else:
                cifar10.read_batch(str(file))
        except ValueError as error:
            problems.append(str(error))
            continue
        if md5sum(file) != md5:
            notes.append(f"'{file}' differs from the published file (MD5 {md5})")
        print(f"{path:<32} {file.stat().st_size / 1e6:8.1f} MB")
    verdict = ("is complete (every file has its published MD5 checksum)" if not notes else
               "is readable by its dataset classes, but differs from the published files (see above): usable "
               "as it is (e.g. generated data), not the published dataset")
    return problems, notes, f"{folder}: {name} {verdict}"


PAIRED_FRAMES = "paired_frames"


def dataset_folder(name: str, root: Path) -> Path:
    """The folder to check: `<root>/<folder>`, or `root` itself when it already is one."""
    source = SOURCES[name]
    inside = root / source.folder
    return root if not inside.exists() and root.is_dir() and source.marker(root) else inside


def _arrange(source: Source, archive: Path) -> Callable[[Path], Path]:
    """Finds the unpacked folder to keep: the top level or the first folder down that has the layout."""

    def arrange(staging: Path) -> Path:
        candidates = [staging] + sorted(p for p in staging.rglob("*") if p.is_dir())
        for folder in candidates:
            if source.marker(folder):
                return folder
        top = ", ".join(sorted(p.name + ("/" if p.is_dir() else "") for p in staging.iterdir())[:8]) or "nothing"
        raise DataError(f"'{archive}' does not hold the {source.folder} layout (its top level: {top}); pass the "
                        f"right archive with --url")

    return arrange


def _prewarping_problems(folder: Path) -> List[str]:
    """Every *.ckpt must load as FlowDBN's prewarping network; pwcnet.ckpt is what the scripts read."""
    from models.flowdbn import FlowDBN
    from utils import checkpoints

    problems = [] if (folder / "pwcnet.ckpt").is_file() else [
        f"no pwcnet.ckpt in '{folder}' (the FlowDBN scripts read $EXPERIMENTS_HOME/prewarping_networks/pwcnet.ckpt)"]
    for path in sorted(folder.glob("*.ckpt")):
        try:
            FlowDBN(sequence_length=5,
                    prewarping_state_dict=checkpoints.load_file(str(path), "prewarping network")["state_dict"])
        except (ValueError, OSError, RuntimeError) as error:
            problems.append(f"'{path}': {error}")
    return problems


def verify(name: str, folder: Path, deep: bool) -> Tuple[List[str], str]:
    """Print what `folder` holds; returns the problems (empty when it has the layout) and the verdict line."""
    if name == "prewarping_networks":
        if not folder.is_dir():
            return [f"'{folder}' is not a folder"], ""
        problems = _prewarping_problems(folder)
        print("\n".join(f"{p.name:<24} {p.stat().st_size / 1e6:8.1f} MB" for p in sorted(folder.glob("*.ckpt"))))
        return problems, f"{folder}: {name} is complete (every network loads)"
    report = layout.verify(name, LAYOUTS[name].reader_root(folder), deep)
    if report.rows:
        print(report.table())
    for note in report.notes:
        print(f"note: {note}")
    if deep and report.ok:
        print(f"--deep: decoded {report.decoded} frames, all readable")
    verdict = {
        "matches": "is complete (matches the published totals)",
        "unknown": "has the layout its dataset classes read (no published totals to compare with)",
        "differs": "has the layout its dataset classes read, but differs from the published totals (see above): "
                   "usable as it is (e.g. generated data), not the whole published dataset",
    }[report.comparison()]
    return report.problems, f"{folder}: {name} {verdict}"


def verify_paired_frames(options: argparse.Namespace) -> int:
    """`paired_frames --verify`: check --root against the PairedFrames layout given by the template flags."""
    if not options.verify:
        print(f"get_data.py: error: {PAIRED_FRAMES} is your own data, there is nothing to download: add --verify to "
              f"check its layout", file=sys.stderr)
        return 2
    if not options.root:
        print(f"get_data.py: error: {PAIRED_FRAMES} --verify needs --root, the folder below which the templates lie",
              file=sys.stderr)
        return 2
    root = Path(options.root).expanduser()
    report = layout.verify_paired_frames(root, options.split or ["train", "test"], options.blur_template,
                                         options.sharp_template, options.frame_extension, options.deep)
    if report.rows:
        print(report.table())
    if options.deep and report.ok:
        print(f"--deep: decoded {report.decoded} frames, all readable")
    for problem in report.problems:
        print(f"get_data.py: error: {problem}", file=sys.stderr)
    if not report.ok:
        return 1
    print(f"{root}: has the layout PairedFramesTrain/PairedFramesTest read with these templates")
    return 0


def download(name: str, root: Path, urls: Sequence[str], keep_archive: bool, progress: bool) -> Path:
    """Fetch, check and unpack one source under `root`; returns the unpacked folder."""
    source = SOURCES[name]
    target = root / source.folder
    if target.exists():
        print(f"{target} exists already: checking it (move it away to download again)")
        return target
    with ArchiveLock(root / source.archive):  # a second run on the same archive stops here, naming this one
        if target.exists():  # a run that held the lock until a moment ago unpacked it
            print(f"{target} was unpacked by another run just now: checking it")
            return target
        return _download_unlocked(source, root, urls, keep_archive, progress)


def _download_unlocked(source: Source, root: Path, urls: Sequence[str], keep_archive: bool, progress: bool) -> Path:
    target = root / source.folder
    archive = root / source.archive
    last_error: Optional[DataError] = None
    for url in urls:
        try:
            fetch(url, archive, progress)
            break
        except DataError as error:
            if not error.elsewhere:
                raise  # broke off (resumes) or a local problem: another address would not help
            last_error = error
    else:
        assert last_error is not None
        raise last_error
    try:
        check_archive(archive)
    except DataError as error:
        archive.unlink()
        raise DataError(f"{error} (removed it: run the same command again to download it afresh)") from None
    unpack(archive, target, _arrange(source, archive))
    for url, filename in source.extra:
        fetch(url, target / filename, progress)
    if not keep_archive:
        archive.unlink()
    return target


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command-line entry point; returns the exit code."""
    parser = argparse.ArgumentParser(prog="get_data.py", description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=sorted(SOURCES) + sorted(CHECKSUMMED) + [PAIRED_FRAMES],
                        help=f"what to get ({PAIRED_FRAMES}: your own frames in PairedFrames' layout, --verify only)")
    # nargs="?": `--root $UNSET_VARIABLE --verify` reaches us as '' and gets our message, not argparse's.
    parser.add_argument("--root", nargs="?", const="", default=None,
                        help="parent folder (default: $DATASETS_HOME, else ~/Datasets; for prewarping_networks "
                             "$EXPERIMENTS_HOME, else ~/Experiments)")
    parser.add_argument("--url", "--mirror", dest="url", default=None,
                        help="address to download from instead of the built-in ones (mnist: the folder address "
                             "that holds its four .gz files)")
    parser.add_argument("--verify", action="store_true", help="only check the existing tree under --root")
    parser.add_argument("--deep", action="store_true", help="with --verify: also decode every frame")
    parser.add_argument("--keep_archive", action="store_true", help="keep the downloaded archive after unpacking")
    paired = parser.add_argument_group(f"{PAIRED_FRAMES} --verify (the PairedFrames datasets' flags)")
    paired.add_argument("--split", action="append", default=None, help="split to check (repeatable; default: "
                        "train and test)")
    for flag, default in TEMPLATE_DEFAULTS.items():
        paired.add_argument(f"--{flag}", default=default, help=f"as --*_dataset_{flag} (default {default!r})")
    options = parser.parse_args(argv)
    if options.name == PAIRED_FRAMES:
        return verify_paired_frames(options)
    variable, fallback = ROOT_VARIABLES.get(options.name, DEFAULT_ROOT)
    if options.root == "":
        print(f"get_data.py: error: --root is empty (is ${variable} unset?): pass a folder, e.g. --root {fallback}, "
              f"or leave --root out to use ${variable}, else {fallback}", file=sys.stderr)
        return 2
    if options.root is None:
        options.root = os.environ.get(variable) or fallback
        origin = f"from ${variable}" if os.environ.get(variable) else f"${variable} is unset"
        print(f"using --root {options.root} ({origin})")
    try:
        problems, notes, verdict, terms = _fetch_and_check(options, Path(options.root).expanduser())
    except DataError as error:
        print(f"get_data.py: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("get_data.py: interrupted; run the same command again to resume the download", file=sys.stderr)
        return 130
    for note in notes:
        print(f"note: {note}")
    if problems:
        for problem in problems:
            print(f"get_data.py: error: {problem}", file=sys.stderr)
        return 1
    print(f"{verdict}. Terms: {terms}")
    return 0


def _fetch_and_check(options: argparse.Namespace, root: Path) -> Tuple[List[str], List[str], str, str]:
    """Download a dataset (unless --verify) and check it: (problems, notes, verdict, its terms of use)."""
    if not options.verify:
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise DataError(f"cannot create --root '{root}': {error.strerror or error}") from None
    urls = [options.url] if options.url else None
    if options.name in CHECKSUMMED:  # MNIST and CIFAR-10: every file checked against its published MD5
        source = CHECKSUMMED[options.name]
        folder = root / source.folder
        if not options.verify:
            folder = download_checksummed(options.name, root, urls or source.urls, options.keep_archive,
                                          sys.stderr.isatty())
        problems, notes, verdict = verify_checksummed(options.name, folder)
        return problems, notes, verdict, source.terms
    source = SOURCES[options.name]
    folder = (dataset_folder(options.name, root) if options.verify else
              download(options.name, root, urls or source.urls, options.keep_archive, sys.stderr.isatty()))
    problems, verdict = verify(options.name, folder, options.deep)
    return problems, [], verdict, source.terms


if __name__ == "__main__":
    sys.exit(main())
