"""Telegram notifications against a local fake Bot API server on 127.0.0.1: what it receives, buffering,
one warning for every kind of failure, and no token anywhere in logs (or, end to end, under --save)."""
import json
import logging
import re
import secrets
import socket
import threading
import time
import urllib.parse
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from utils import telegram
from utils.logger import block, configure_logging, install_original_logging_helpers, values

# Made at run time: a literal would be found in src.zip, which holds this very file.
TOKEN = f"{secrets.randbelow(10 ** 9)}:{secrets.token_urlsafe(24)}"
CHAT_ID = "4242"


class FakeBotApi:
    """Answers getMe and sendMessage for known tokens, 401 for others; records every request."""

    def __init__(self, tokens=(TOKEN,)):
        self.tokens = set(tokens)
        self.requests = []  # (token, method, params)
        self.fail_sends = False
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 -- http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode()
                if "json" in (self.headers.get("Content-Type") or ""):
                    params = json.loads(body or "{}")
                else:
                    params = {k: v[0] for k, v in urllib.parse.parse_qs(body).items()}
                token, _, method = self.path[len("/bot"):].partition("/")
                server.requests.append((token, method, params))
                if token not in server.tokens:
                    self._reply(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
                elif method == "getMe":
                    self._reply(200, {"ok": True, "result": {"id": 1, "is_bot": True, "first_name": "Fake",
                                                             "username": "fake_bot"}})
                elif method == "sendMessage" and server.fail_sends:
                    self._reply(502, {"ok": False, "error_code": 502, "description": "Bad Gateway"})
                elif method == "sendMessage":
                    self._reply(200, {"ok": True, "result": {
                        "message_id": len(server.requests), "date": int(time.time()),
                        "chat": {"id": int(params["chat_id"]), "type": "private"}, "text": params["text"]}})
                else:
                    self._reply(404, {"ok": False, "error_code": 404, "description": "Not Found"})

            def _reply(self, status, payload):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/bot"
        # shutdown() waits for the serving loop's next poll: 0.5 s by default, per test.
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
        self.thread.start()

    def texts(self):
        return [params["text"] for _, method, params in self.requests if method == "sendMessage"
                and not self.fail_sends]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    fake = FakeBotApi()
    yield fake
    fake.close()


@pytest.fixture
def logbook(tmp_path):
    filename = tmp_path / "logbook.txt"
    configure_logging(str(filename))
    yield filename
    configure_logging(None)


def _machines(tmp_path, base_url, token=TOKEN, host=None):
    filename = tmp_path / "machines.json"
    filename.write_text(json.dumps({"chat_id": CHAT_ID, "machines": {host or telegram.short_hostname(): token},
                                    "base_url": base_url}))
    return str(filename)


def _read(filename):
    for handler in logging.getLogger().handlers:
        handler.flush()
    return filename.read_text()


def test_split_message_respects_the_bot_api_limit():
    assert telegram.split_message("a\nb", limit=5) == ["a\nb"]
    assert telegram.split_message("aaa\nbbb\ncc", limit=7) == ["aaa\nbbb", "cc"]
    assert telegram.split_message("x" * 12 + "\ny", limit=5) == ["xxxxx", "xxxxx", "xx\ny"]


def test_messages_are_buffered_and_flushed(tmp_path, server, logbook):
    notifier = telegram.load_notifier(_machines(tmp_path, server.base_url))
    assert notifier is not None
    with telegram.active(notifier):  # what main.py does around a run
        telegram.send_message("%s:%s on %s @0/%d", "pre", "FlowDBN", "cpu", 2)  # the first goes out at once
        telegram.send_message("epoch %d", 1)                                       # then buffered (600 s interval)
        telegram.send_message("epoch %d", 2)
        assert server.texts() == ["pre:FlowDBN on cpu @0/2"]
        telegram.flush()
        assert server.texts() == ["pre:FlowDBN on cpu @0/2", "epoch 1\nepoch 2"]
        assert all(params["chat_id"] == CHAT_ID for _, m, params in server.requests if m == "sendMessage")
        telegram.flush()  # nothing pending: nothing sent
    telegram.send_message("after the run")  # no run active: a no-op
    assert len(server.texts()) == 2
    assert len(server.texts()) == 2
    assert TOKEN not in _read(logbook)


def test_original_logging_helpers_are_an_explicit_shim(tmp_path, server, logbook, monkeypatch):
    for name in ("block", "value", "values", "telegram", "telegram_flush"):
        monkeypatch.delattr(logging, name, raising=False)
    configure_logging(None)
    assert not hasattr(logging, "telegram") and not hasattr(logging, "values")  # the standard module is left alone
    install_original_logging_helpers()
    assert logging.block is block and logging.values is values and logging.telegram_flush is telegram.flush
    notifier = telegram.load_notifier(_machines(tmp_path, server.base_url))
    with telegram.active(notifier):  # code written against the original reaches the run's notifier
        logging.telegram("epoch %d", 1)
    assert server.texts() == ["epoch 1"]


def test_send_failures_warn_once_and_keep_the_messages(tmp_path, server, logbook):
    notifier = telegram.load_notifier(_machines(tmp_path, server.base_url), flush_secs=0)
    server.fail_sends = True
    notifier.send_message("first")
    notifier.send_message("second")
    server.fail_sends = False
    notifier.send_message("third")
    assert server.texts()[-1] == "first\nsecond\nthird"
    text = _read(logbook)
    assert text.count("Telegram: could not send a message") == 1 and TOKEN not in text


@pytest.mark.parametrize("case", ["missing", "not_json", "no_host", "rejected", "unreachable"])
def test_every_configuration_failure_logs_one_warning(tmp_path, server, logbook, case):
    if case == "missing":
        filename, expected = str(tmp_path / "absent.json"), "no configuration at"
    elif case == "not_json":
        filename, expected = str(tmp_path / "bad.json"), "could not read"
        (tmp_path / "bad.json").write_text('{"chat_id": 1, "machines": {"h": "' + TOKEN + '"')
    elif case == "no_host":
        filename, expected = _machines(tmp_path, server.base_url, host="another-host"), "no token for this host"
    elif case == "rejected":
        filename, expected = _machines(tmp_path, server.base_url, token=TOKEN + "x"), "not available (InvalidToken"
    else:
        with socket.socket() as probe:  # a port nobody listens on
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        filename, expected = _machines(tmp_path, f"http://127.0.0.1:{port}/bot"), "not available (NetworkError"
    notifier = telegram.load_notifier(filename)
    assert notifier is None
    with telegram.active(notifier):
        telegram.send_message("dropped")  # disabled: a no-op, training goes on
        telegram.flush()
    text = _read(logbook)
    warnings = [line for line in text.splitlines() if "Telegram:" in line]
    assert len(warnings) == 1 and expected in warnings[0], warnings
    assert TOKEN not in text
    assert "dropped" not in server.texts()


def _files_contain(folder, secret):
    """Paths of files under `folder` (and members of zip archives) whose bytes contain `secret`."""
    found = []
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        if secret in path.read_bytes():
            found.append(str(path))
        if path.suffix == ".zip":
            with zipfile.ZipFile(path) as archive:
                found += [f"{path}:{name}" for name in archive.namelist() if secret in archive.read(name)]
    return found


def _configure_this_machine(tmp_path, server, monkeypatch) -> None:
    """A machines file that gives this host the test token and points the Bot API at the fake server."""
    import constants

    machines = tmp_path / "home" / ".machines.json"
    machines.parent.mkdir()
    machines.write_text(json.dumps({"chat_id": CHAT_ID, "base_url": server.base_url,
                                    "machines": {telegram.short_hostname(): TOKEN}}))
    monkeypatch.setattr(constants, "LOGGING_TELEGRAM_MACHINES_FILENAME", str(machines))


def test_training_run_sends_start_epoch_and_final_messages_and_leaks_no_token(tmp_path, server, monkeypatch):
    import main
    from tools.synthetic_gopro import make_gopro_nah

    root = make_gopro_nah(str(tmp_path / "data"), width=32, height=32, num_frames=2, train_sequences=1,
                          test_sequences=0)
    _configure_this_machine(tmp_path, server, monkeypatch)
    save = tmp_path / "run"
    argv = [f"--save={save}", "--model=DBN", "--loss=DBNLoss", "--optimizer=SGD",
            "--training_dataset=GoProNahTrain", f"--training_dataset_root={root}",
            "--training_dataset_random_crop=[32, 32]", "--training_dataset_num_samples_per_example=1",
            "--training_dataset_num_workers=0", "--training_dataset_num_examples=1", "--total_epochs=2",
            "--cuda=False", "--prefix=tg"]
    try:
        assert main.main(argv) == 0
    finally:
        configure_logging(None)
    texts = server.texts()
    # The start message goes out at once; the epoch messages wait for the 600 s interval, i.e. the final flush.
    assert len(texts) == 2, texts
    start = texts[0].splitlines()
    assert start[0] == "tg:DBN on cpu @0/2"
    for line in ("  model: DBN", "  prefix: tg", "  total_epochs: 2", "  training_dataset: GoProNahTrain"):
        assert line in start
    epochs = texts[1].splitlines()
    assert re.fullmatch(r"tg:DBN on cpu \[1/2<\d\dm:\d\ds\]: lr: 0\.001", epochs[0]), epochs
    assert re.fullmatch(r"tg:DBN on cpu \[2/2<00m:00s\]: lr: 0\.001", epochs[1]), epochs
    assert "Telegram: notifications enabled" in (save / "logbook.txt").read_text()
    assert {"args.json", "args.txt", "logbook.txt", "src.zip", "checkpoint_latest_.ckpt"} <= \
        {p.name for p in save.iterdir()}
    assert _files_contain(save, TOKEN.encode()) == []


def test_the_token_is_redacted_in_any_letter_case_and_url_encoded():
    notifier = telegram.TelegramNotifier("123456:AbCdEf-Gh", "42")
    text = ("POST /bot123456:abcdef-gh/sendMessage failed; "
            "url http://x/bot123456%3AAbCdEf-Gh/getMe; raw 123456:ABCDEF-GH")
    assert notifier.redact(text) == ("POST /bot<token>/sendMessage failed; url http://x/bot<token>/getMe; "
                                     "raw <token>")


def test_epoch_message_says_the_gain_over_the_input(tmp_path, server, monkeypatch):
    import main
    from tools.synthetic_gopro import make_gopro_nah
    from utils.records import read_csv_rows

    root = make_gopro_nah(str(tmp_path / "data"), width=32, height=32, num_frames=5, train_sequences=1,
                          test_sequences=1)
    _configure_this_machine(tmp_path, server, monkeypatch)
    save = tmp_path / "run"
    argv = [f"--save={save}", "--model=DBN", "--loss=DBNLoss", "--optimizer=SGD", "--training_dataset=GoProNahTrain",
            f"--training_dataset_root={root}", "--training_dataset_num_samples_per_example=1",
            "--training_dataset_num_workers=0", "--training_dataset_num_examples=1", "--total_epochs=1",
            "--validation_dataset=GoProNahTest", f"--validation_dataset_root={root}",
            "--validation_dataset_num_workers=0", "--validation_dataset_num_examples=1", "--cuda=False", "--prefix=tg"]
    try:
        assert main.main(argv) == 0
    finally:
        configure_logging(None)
    [evaluation] = read_csv_rows(str(save / "csv" / "GoProNahTest_evaluation_losses.csv"))
    [baseline] = read_csv_rows(str(save / "csv" / "GoProNahTest_input_baseline.csv"))
    gain = float(evaluation["psnr"]) - float(baseline["psnr"])
    epoch = server.texts()[-1].splitlines()[0]
    assert epoch.startswith("tg:DBN on cpu [1/1<00m:00s]: best_total_loss_avg: ")
    assert epoch.endswith(f"; psnr {gain:+.2f} dB over input"), epoch
