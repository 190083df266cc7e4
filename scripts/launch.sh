#!/usr/bin/env bash
# The one launcher of the experiment configurations under configs/: common.sh's environment (the venv, one
# thread per process, DATASETS_HOME, EXPERIMENTS_HOME, FRAME_CACHE_DIR, the bounded GPU wait, DRY_RUN), then
#   main.py --config=<config> --save=<run folder> <extra flags>
# The configuration's ${DATASETS_HOME}, ${EXPERIMENTS_HOME}, ${FRAME_CACHE_DIR} and ${SAVE_PATH} (the run
# folder) are read from this environment; flags given after it override the configuration's.
#
#   bash scripts/launch.sh CONFIG RUN_FOLDER [main.py flags...]    (CONFIG: a file, or a name under configs/
#                                                                   without .json; RUN_FOLDER: relative to
#                                                                   EXPERIMENTS_HOME unless absolute)
# The launchers under scripts/deblurring/ and scripts/flow/ source this file and call `launch`.
set -euo pipefail
if [ "${BASH_SOURCE[0]}" = "$0" ] && [ "$#" -lt 2 ]; then
    echo "usage: bash scripts/launch.sh CONFIG RUN_FOLDER [main.py flags...]" >&2
    exit 2
fi
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/common.sh"

TIME="${TIME:-$(date +%Y%m%d-%H%M%S)}"

# launch CONFIG RUN_FOLDER [FLAGS...]: run main.py with the configuration and the run folder (see above).
launch() {
    local name="$1" config="$1" save="$2"
    shift 2
    [ -f "$config" ] || config="$REPO_ROOT/configs/$config.json"
    if [ ! -f "$config" ]; then
        echo "launch.sh: no configuration $name (a file, or a name under configs/ without .json)" >&2
        return 2
    fi
    config="$(cd "$(dirname "$config")" && pwd)/$(basename "$config")"  # run_main runs from the repository
    [[ "$save" == /* ]] || save="$EXPERIMENTS_HOME/$save"
    export SAVE_PATH="$save"
    run_main --config="$config" --save="$SAVE_PATH" "$@"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    launch "$@"
fi
