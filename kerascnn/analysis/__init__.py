"""Model analysis.

    profile          per-layer output shape, activation memory, parameters, MACs (`summary`)
    macs             total multiply-accumulates of a forward pass
    receptive_field  receptive field size, jump and start along the graph (`receptive-field`)
    visualize        first-layer filters and per-block feature maps (`visualize`)
    confusion        confusion matrix and per-class accuracy of a run (written by `fit`)
    compare          table, curves and bar charts of several runs (`compare`)
    graph, build, tables, files   shared helpers: graph walking, building with clear
                     shape errors, table text, atomic writes
"""
