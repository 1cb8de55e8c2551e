"""How `inv` reads and explains its command line, where invoke's defaults puzzle a newcomer.

- `MeshTask`: `-h` is always help (never an automatic short flag), and a numeric flag shows
  what it takes in `--help` (`--duration=SECONDS`, not invoke's `--duration=STRING`). Numeric
  flags stay strings for invoke (a typed flag would make invoke raise a traceback on
  `--port abc`); options.py parses them with a one-sentence error.
- `MeshCollection`: the root collection, whose parser contexts print those value names.
- `adjust_program()`: bare `inv` lists the tasks (invoke prints its own core options), a
  flag given without a value says so in one sentence naming the flag, and the collection
  invoke loaded from tasks.py becomes a MeshCollection.
"""
from __future__ import annotations

import re

from invoke import Collection, Task
from invoke.exceptions import ParseError
from invoke.parser import Argument, ParserContext
from invoke.program import Program

INVOKE_VALUE_NAMES = ("STRING", "INT")


class MeshArgument(Argument):
    """An Argument that knows what its value is called in help (`metavar`)."""

    metavar: str | None = None

    def __repr__(self) -> str:
        # invoke names the flag in its parse errors with repr(); this reads as the flag a user typed.
        return f"--{self.name.replace('_', '-')}"


class MeshTask(Task):
    """A task whose numeric flags have value names in help, and whose `-h` stays help.

    `@task(klass=MeshTask, metavars={"duration": "SECONDS"})`.
    """

    def __init__(self, *args, metavars: dict[str, str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.metavars = dict(metavars or {})

    def arg_opts(self, name, default, taken_names):
        return super().arg_opts(name, default, taken_names | {"h"})

    def get_arguments(self, ignore_unknown_help=None):
        arguments = []
        for argument in super().get_arguments(ignore_unknown_help):
            argument.__class__ = MeshArgument
            argument.metavar = self.metavars.get(argument.name)
            arguments.append(argument)
        return arguments


class MeshParserContext(ParserContext):
    def help_for(self, flag):
        spec, text = super().help_for(flag)
        metavar = getattr(self.flags[flag], "metavar", None)
        if metavar:
            spec = re.sub(r"\b(?:%s)\b" % "|".join(INVOKE_VALUE_NAMES), metavar, spec)
        return spec, text


class MeshCollection(Collection):
    """The root collection: its parser contexts show each numeric flag's value name.

    invoke copies tasks.py's `ns` into a plain Collection when it loads it; `adjust_program`
    makes that copy a MeshCollection again.
    """

    def to_contexts(self, ignore_unknown_help=None):
        contexts = []
        for context in super().to_contexts(ignore_unknown_help):
            context.__class__ = MeshParserContext
            for argument in context.args.values():
                if not isinstance(argument, MeshArgument):  # a plain Task's: named right in errors too
                    argument.__class__ = MeshArgument
            contexts.append(context)
        return contexts


_NEEDED_VALUE = re.compile(r"^Flag (?P<flag>\S+) needed value and was not given one!$")


def _list_tasks_when_none_given(program: Program) -> None:
    program.list_tasks()
    print("\n`inv --help TASK` shows a task's flags.")
    raise SystemExit(0)


def _parse_tasks_with_plain_errors(original):
    def parse_tasks(program: Program) -> None:
        # The tasks' parser is made here from `program.collection`, loaded from tasks.py by now.
        if type(program.collection) is Collection:
            program.collection.__class__ = MeshCollection
        try:
            original(program)
        except ParseError as exc:
            match = _NEEDED_VALUE.match(str(exc))
            if not match:
                raise
            task_name = exc.context.name if exc.context else None
            where = f"`inv --help {task_name}` says what it takes." if task_name else "`inv --help` lists the flags."
            raise ParseError(f"{match['flag']} needs a value after it; {where}", exc.context) from None

    parse_tasks.adjusted = True
    return parse_tasks


def adjust_program() -> None:
    """Bare `inv` lists the tasks; a flag without its value gets a sentence that names it; the
    root collection shows value names in help.

    invoke builds its Program before it reads tasks.py, so these are set on the class.
    """
    Program.no_tasks_given = _list_tasks_when_none_given
    if not getattr(Program.parse_tasks, "adjusted", False):
        Program.parse_tasks = _parse_tasks_with_plain_errors(Program.parse_tasks)

