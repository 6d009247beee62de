"""Chemistry by program: the functional-group families a CC data set must cover
(`families.py`), closed-shell C/H/N/O molecules enumerated as a skeleton × functional-group
product (`enumerate.py`), and a cost-aware choice of molecules that covers every family
(`cover.py`)."""
