"""chatapi's ASGI handler keeps Django's request handling: its ``handle`` is Django's
statement for statement, but for the exception class Django defines on every request (a class
each open stream kept), defined once here. A Django upgrade that changes ``handle`` fails this
test, and the copy is brought up to date (or dropped, if Django defines the class once)."""

import ast
import inspect
import textwrap
from collections.abc import Callable
from typing import Any

from django.core.handlers.asgi import ASGIHandler

from chatapi.asgi import OneThreadASGIHandler


def body(function: Callable[..., Any], *, drop_classes: bool) -> str:
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    definition = tree.body[0]
    assert isinstance(definition, ast.AsyncFunctionDef)
    statements = definition.body
    if isinstance(statements[0], ast.Expr) and isinstance(statements[0].value, ast.Constant):
        statements = statements[1:]  # the docstring

    class DropClasses(ast.NodeTransformer):
        def visit_ClassDef(self, node: ast.ClassDef) -> None:
            assert node.name == "RequestProcessed"

    module = ast.Module(body=statements, type_ignores=[])
    if drop_classes:
        module = DropClasses().visit(module)
    return ast.dump(module)


def test_the_handler_is_djangos_with_its_per_request_class_defined_once() -> None:
    ours = body(OneThreadASGIHandler.handle, drop_classes=False)
    djangos = body(ASGIHandler.handle, drop_classes=True)

    assert ours == djangos
    assert "ClassDef" not in ours
