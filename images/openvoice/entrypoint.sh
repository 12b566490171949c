#!/bin/sh
# Entrypoint of the OpenVoice image, installed as /opt/vmctl/entrypoint.sh and run through
# /bin/sh, so it needs no exec bit. It enforces OPENVOICE_DEVICE before handing over to the
# command (the server, or `python3 /opt/vmctl/cuda_check.py`).
#   OPENVOICE_DEVICE=cuda (default)  use the GPU. Warns when no NVIDIA device was passed in.
#   OPENVOICE_DEVICE=cpu             CPU fallback that vmctl's compose stack uses on hosts without
#                                    a GPU. CUDA_VISIBLE_DEVICES is emptied, so torch can't reach a
#                                    GPU even if code somewhere defaults to "cuda".
set -eu

OPENVOICE_DEVICE="${OPENVOICE_DEVICE:-cuda}"
case "$OPENVOICE_DEVICE" in
  cuda)
    if [ ! -e /dev/nvidiactl ]; then
      echo "openvoice: OPENVOICE_DEVICE=cuda but no NVIDIA device is attached to this container;" \
           "run it with a GPU (vmctl up --gpu on) or set OPENVOICE_DEVICE=cpu" >&2
    fi
    ;;
  cpu)
    CUDA_VISIBLE_DEVICES=""
    export CUDA_VISIBLE_DEVICES
    ;;
  *)
    echo "openvoice: OPENVOICE_DEVICE must be \"cuda\" or \"cpu\", got \"$OPENVOICE_DEVICE\"" >&2
    exit 64
    ;;
esac
export OPENVOICE_DEVICE

exec "$@"
