"""Model analysis.

    profile          per-layer output shape, activation memory, parameters, MACs (`summary`)
    macs             total multiply-accumulates of a forward pass
    memory           ESTIMATED training memory and the largest batch per GPU size
    receptive_field  receptive field size, jump and start along the graph (`receptive-field`)
    visualize        first-layer filters and per-block feature maps (`visualize`)
    confusion        confusion matrix and per-class accuracy of a run (written by `fit`)
    curves           loss and accuracy curves of one run (written by `fit`)
    compare          table, curves and bar charts of several runs (`compare`)
    graph, build, tables   shared helpers: graph walking, building with clear
                     shape errors, table text

The functions below are loaded on first use.
"""

from kerascnn._lazy import lazy_exports

_PUBLIC = {
    "profile_model": "kerascnn.analysis.profile",
    "format_profile": "kerascnn.analysis.profile",
    "forward_macs": "kerascnn.analysis.macs",
    "estimate_training_memory": "kerascnn.analysis.memory",
    "receptive_fields": "kerascnn.analysis.receptive_field",
    "plot_fields": "kerascnn.analysis.receptive_field",
    "visualize": "kerascnn.analysis.visualize:visualize",
    "load_for_analysis": "kerascnn.analysis.visualize",
    "confusion_matrix": "kerascnn.analysis.confusion",
    "write_class_report": "kerascnn.analysis.confusion",
    "plot_curves": "kerascnn.analysis.curves",
    "compare_runs": "kerascnn.analysis.compare",
    "build_model": "kerascnn.analysis.build",
}

__all__ = sorted(_PUBLIC)
__getattr__, __dir__ = lazy_exports(__name__, _PUBLIC)
