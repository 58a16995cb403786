"""Helpers the tests share for looking at a recorded graph and at a cell's state."""


def graph_nodes(root):
    """Every tensor behind ``root`` (itself included), each once, by an iterative walk."""
    found, seen, todo = [], {}, [root]
    while todo:
        node = todo.pop()
        if id(node) not in seen:
            seen[id(node)] = True
            found.append(node)
            todo.extend(node.parents)
    return found


def graph_ops(root):
    """The op name of every non-leaf node behind ``root``, each node once."""
    return [node.op for node in graph_nodes(root) if node.op is not None]


def parts(state):
    """A state as a tuple: (h,) or (h, c)."""
    return state if isinstance(state, tuple) else (state,)
