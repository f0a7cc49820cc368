"""Import-linter contract types of Keel's own (pyproject.toml's [tool.importlinter]).

`standard_library_only`: the source modules import nothing from outside the
standard library but each other and the root packages. A forbidden contract
would have to list every third-party package, and miss the next one
installed; this asks Python which modules are its standard library.
"""

from __future__ import annotations

import sys

from grimp import ImportGraph
from importlinter import Contract, ContractCheck, fields, output


class StandardLibraryOnlyContract(Contract):
    type_name = "standard_library_only"

    source_modules = fields.ListField(subfield=fields.ModuleField())

    def check(self, graph: ImportGraph, verbose: bool) -> ContractCheck:
        found = []
        for source in self.source_modules:  # type: ignore[attr-defined]
            for importer in sorted({source.name} | graph.find_descendants(source.name)):
                for imported in sorted(graph.find_modules_directly_imported_by(importer)):
                    top = imported.partition(".")[0]
                    # Only packages outside the root packages are squashed (external).
                    if graph.is_module_squashed(imported) and top not in sys.stdlib_module_names:
                        details = graph.get_import_details(importer=importer, imported=imported)
                        lines = sorted(detail["line_number"] for detail in details)
                        found.append((importer, imported, lines))
        return ContractCheck(kept=not found, metadata={"imports": found})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for importer, imported, lines in check.metadata["imports"]:
            where = ", ".join(f"l.{line}" for line in lines)
            output.print_error(f"{importer} -> {imported} ({where}): not the standard library")
            output.new_line()
