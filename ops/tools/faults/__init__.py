"""The cases of scripts/fault_check.py, by kind (ops/tools/fault_check.py runs them)."""
