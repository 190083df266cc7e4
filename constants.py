"""Framework-wide constants: file names, flush intervals, progress-bar and data-loader settings."""
import os

LOGGING_GLOBAL_INDENT = 2
LOGGING_LOGBOOK_FILENAME = "logbook.txt"
# Telegram configuration (template: dot_machines.json in the repository root).
LOGGING_TELEGRAM_MACHINES_FILENAME = os.path.join(os.path.expanduser("~"), ".machines.json")
# Zone of log timestamps: None for the machine's local time (as TensorBoard and the clock show), or a tz
# database name such as "Europe/Berlin" (the original's).
LOGGING_TIMEZONE = None
LOGGING_TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"
LOGGING_ZIPSOURCE_FILENAME = "src.zip"

TELEGRAM_FLUSH_SECS = 600
TENSORBOARD_FLUSH_SECS = 600

# Width of progress bars on a terminal: None follows the terminal's width; a bar's postfix is cut only
# between fields. Where stdout is not a terminal there are no bars, but a plain progress line every
# PROGRESS_PLAIN_INTERVAL_SECS seconds and one per finished pass.
TQDM_NCOLS = None
TQDM_SMOOTHING = 0
PROGRESS_PLAIN_INTERVAL_SECS = 30

# training_curves.png is redrawn after an epoch once this many seconds have passed since the run started or
# was last drawn, and at the end of a run: drawing takes ~0.5 s, more than a whole epoch of a small run.
PLOT_INTERVAL_SECS = 60

DATALOADER_PIN_MEMORY = True
TRAINING_DATALOADER_SHUFFLE = True
TRAINING_DATALOADER_DROP_LAST = True
VALIDATION_DATALOADER_SHUFFLE = False
VALIDATION_DATALOADER_DROP_LAST = False

CUDNN_BENCHMARK = True

# Image files read as frames (deblur.py) and written by GoProInference (--visualizer_ext).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".ppm")

# torchrun: a collective waits this long for the other ranks before it fails (--distributed_timeout_minutes).
# Longer than any pause one rank takes alone (a full validation, filling the frame cache, --compile), short
# enough that a dead or stalled peer does not hold every GPU of a job for hours.
DISTRIBUTED_TIMEOUT_MINUTES = 30.0

# On a GPU the training loop reads loss values (progress bar, non-finite check) every this many steps instead
# of after every step, so the GPU runs ahead of the host; on the CPU it reads them every step (no cost there).
CUDA_SYNC_INTERVAL_STEPS = 25
