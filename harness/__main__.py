"""``python -m ctbench``: the command line, as torchrun starts it.

``torchrun --nproc-per-node N -m ctbench run ...`` runs this module in N processes. Under
torchrun an uncaught error is recorded (``torch.distributed.elastic``'s ``record``) so that
torchrun reports the failing rank's traceback when it stops the job.
"""

import os

from ctbench.cli import main

if __name__ == "__main__":
    if "TORCHELASTIC_RUN_ID" in os.environ:
        from torch.distributed.elastic.multiprocessing.errors import record

        main = record(main)
    main(prog_name="ctbench")
