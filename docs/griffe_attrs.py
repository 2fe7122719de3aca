"""A griffe extension: the `__init__` that attrs generates, for the API reference.

griffe reads the source without running it, so it sees no `__init__` in an attrs class, and
the reference would show `WebPush()` and warn about every documented argument. This builds
the signature attrs makes, from the class's annotated fields: their order, `kw_only`, the
`default=` or `factory=` of `attrs.field`, and, for a field with a converter, the type of the
converter's first parameter (what a caller passes; the field's own annotation is the type
after conversion). Fields of attrs base classes come first, as in attrs. Loaded by
mkdocs.yml; only the documentation uses it.
"""

from __future__ import annotations

from typing import Any

import griffe

_CLASS_DECORATORS = frozenset(
    {
        "attrs.define",
        "attrs.frozen",
        "attrs.mutable",
        "attr.s",
        "attr.attrs",
        "attr.define",
        "attr.frozen",
        "attr.mutable",
    }
)
_FIELD_CALLS = frozenset({"attrs.field", "attr.ib", "attr.attrib", "attr.field"})


def _decorator(cls: griffe.Class) -> griffe.Expr | None:
    for decorator in cls.decorators:
        value = decorator.value
        if isinstance(value, griffe.Expr) and value.canonical_path in _CLASS_DECORATORS:
            return value
    return None


def _arguments(expr: object) -> dict[str, Any]:
    if not isinstance(expr, griffe.ExprCall):
        return {}
    return {
        argument.name: argument.value
        for argument in expr.arguments
        if isinstance(argument, griffe.ExprKeyword)
    }


def _converter_input(cls: griffe.Class, converter: object) -> Any:
    """The annotation of the converter's first parameter, when it can be found."""
    if not isinstance(converter, griffe.Expr):
        return None
    try:
        function = cls.modules_collection[converter.canonical_path]
    except (KeyError, AttributeError, griffe.AliasResolutionError):
        return None
    if not isinstance(function, griffe.Function | griffe.Alias) or not function.is_function:
        return None
    parameters = list(function.parameters)
    return parameters[0].annotation if parameters else None


def _fields(cls: griffe.Class) -> list[griffe.Parameter]:
    kw_only = _arguments(_decorator(cls)).get("kw_only") == "True"
    parameters = []
    for member in cls.members.values():
        if member.is_alias or not member.is_attribute or member.annotation is None:
            continue
        if "class-attribute" in member.labels and "instance-attribute" not in member.labels:
            continue  # a ClassVar
        value = member.value
        is_field = isinstance(value, griffe.ExprCall) and value.canonical_path in _FIELD_CALLS
        arguments = _arguments(value) if is_field else {}
        if arguments.get("init") == "False":
            continue
        if "factory" in arguments:
            default: Any = griffe.ExprCall(function=arguments["factory"], arguments=[])
        elif is_field:
            default = arguments.get("default")
        else:
            default = value
        annotation = member.annotation
        if "converter" in arguments:
            annotation = _converter_input(cls, arguments["converter"]) or annotation
        keyword_only = kw_only or arguments.get("kw_only") == "True"
        parameters.append(
            griffe.Parameter(
                str(arguments.get("alias", member.name.lstrip("_"))).strip("'\""),
                annotation=annotation,
                kind=griffe.ParameterKind.keyword_only
                if keyword_only
                else griffe.ParameterKind.positional_or_keyword,
                default=default,
                docstring=member.docstring,
            )
        )
    return parameters


def _add_init(cls: griffe.Class) -> None:
    if "__init__" in cls.members or _decorator(cls) is None:
        return
    parameters: dict[str, griffe.Parameter] = {}
    try:
        mro = cls.mro()
    except ValueError:
        mro = []
    for base in [*reversed(mro), cls]:
        if _decorator(base) is not None:
            parameters.update((p.name, p) for p in _fields(base))
    ordered = sorted(parameters.values(), key=lambda p: p.kind is griffe.ParameterKind.keyword_only)
    cls.set_member(
        "__init__",
        griffe.Function(
            "__init__",
            lineno=0,
            endlineno=0,
            parent=cls,
            parameters=griffe.Parameters(
                griffe.Parameter("self", kind=griffe.ParameterKind.positional_or_keyword),
                *ordered,
            ),
            returns="None",
        ),
    )


def _visit(obj: griffe.Module | griffe.Class, seen: set[str]) -> None:
    if obj.path in seen:
        return
    seen.add(obj.path)
    if isinstance(obj, griffe.Class):
        _add_init(obj)
    for member in list(obj.members.values()):
        if not member.is_alias and isinstance(member, griffe.Module | griffe.Class):
            _visit(member, seen)


class AttrsInit(griffe.Extension):
    """Give every attrs class of a loaded package the `__init__` attrs generates for it."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        _visit(pkg, set())
