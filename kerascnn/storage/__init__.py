"""Files a run leaves on disk, written so that a crash never leaves half a file.

    atomic    write to a temporary file in the same folder, then rename
    rundir    the run directory's layout (config.json, history.csv, best.keras, ...), JSON
    history   history.csv: one row per finished epoch
    readback  reading any of them back: a missing, damaged or foreign file is one DataError line
"""
