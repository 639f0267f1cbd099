"""The graph stage: typed nodes, edges, the graph of one model, edge scores and circuits; plain and serialisable."""

from .circuit import Circuit, circuit_from_scores, connected_edges
from .graph import Edge, Graph
from .nodes import HookGroup, Node, NodeKind, parse_node_name
from .scores import EdgeScores, ScoreTrajectory

__all__ = ["Circuit", "Edge", "EdgeScores", "Graph", "HookGroup", "Node", "NodeKind", "ScoreTrajectory",
           "circuit_from_scores", "connected_edges", "parse_node_name"]
