"""The graph stage: typed nodes, edges, the graph of one model, edge scores and circuits, and dictionary (feature)
graphs whose writers are split into feature and error nodes; plain and serialisable."""

from .circuit import Circuit, circuit_from_scores, connected_edges
from .dictionary import Dictionary, feature_graph, feature_groups, merged_groups, node_outputs
from .graph import Edge, Graph
from .kinds import GraphKind
from .nodes import (
    HookGroup,
    Node,
    NodeKind,
    embedding_node,
    error_node,
    feature_node,
    head_node,
    mlp_node,
    output_node,
    parse_node_name,
)
from .scores import ZERO_TOLERANCE, EdgeScores, ScoreTrajectory

__all__ = [
    "ZERO_TOLERANCE",
    "Circuit",
    "Dictionary",
    "Edge",
    "EdgeScores",
    "Graph",
    "GraphKind",
    "HookGroup",
    "Node",
    "NodeKind",
    "ScoreTrajectory",
    "circuit_from_scores",
    "connected_edges",
    "embedding_node",
    "error_node",
    "feature_graph",
    "feature_groups",
    "feature_node",
    "head_node",
    "merged_groups",
    "mlp_node",
    "node_outputs",
    "output_node",
    "parse_node_name",
]
