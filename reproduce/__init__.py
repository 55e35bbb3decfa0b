"""The paper reproduction: profiles, notebook runner, tables and figures of the paper.

Sits beside the library (``jkoic``), which it calls; the wheel does not ship it. Run it from a
checkout: ``python -m reproduce run --profile cpu`` (``make paper``).
"""
