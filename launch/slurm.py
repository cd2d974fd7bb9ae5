DESCRIPTION = "todo"
def add_arguments(p): pass
def run(o, t): return 0
