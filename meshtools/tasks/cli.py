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

import contextlib
import io
import re
import shutil
import sys
import textwrap

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

    def __init__(self, *args, metavars: dict[str, str] | None = None, variadic: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.metavars = dict(metavars or {})
        # `inv logs a b -f`: the words after the task that are not flags or their values fill
        # this flag, comma separated (invoke itself has no variadic positional arguments).
        self.variadic = variadic

    def arg_opts(self, name, default, taken_names):
        return super().arg_opts(name, default, taken_names | {"h"})

    def get_arguments(self, ignore_unknown_help=None):
        arguments = []
        saved = dict(self.help)  # invoke pops each flag's help as it goes: keep it for the next call
        try:
            made = super().get_arguments(ignore_unknown_help)
        finally:
            self.help = saved
        for argument in made:
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
        program.core.unparsed = gather_variadic(program.collection, program.core.unparsed)
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


def gather_variadic(collection: Collection, argv: list[str]) -> list[str]:
    """`logs a b --since 5m` → `logs --since 5m --names a,b` for a MeshTask with variadic="names"."""
    result: list[str] = []
    task, takes_value, words = None, set(), []

    def close():
        if task is not None and words:
            result.extend([f"--{task.variadic.replace('_', '-')}", ",".join(words)])

    i = 0
    while i < len(argv):
        token = argv[i]
        if token in collection.task_names or any(token in aliases for aliases in collection.task_names.values()):
            close()
            found = collection[token]
            task, words = (found, []) if getattr(found, "variadic", None) else (None, [])
            takes_value = set()
            if task is not None:
                for argument in task.get_arguments():
                    if argument.takes_value:
                        takes_value |= {f"--{n.replace('_', '-')}" if len(n) > 1 else f"-{n}" for n in argument.names}
            result.append(token)
        elif task is not None and token in takes_value and i + 1 < len(argv):
            result += [token, argv[i + 1]]
            i += 1
        elif task is not None and not token.startswith("-"):
            words.append(token)
        else:
            result.append(token)
        i += 1
    close()
    return result


def fitted_help(lines: list[str], width: int) -> list[str]:
    """invoke's task help with each docstring paragraph that has a line over `width` filled
    again at words, keeping its indent (invoke prints a docstring's lines as written)."""
    result: list[str] = []
    paragraph: list[str] = []

    def flush() -> None:
        if any(len(line) > width for line in paragraph):
            indent = paragraph[0][:len(paragraph[0]) - len(paragraph[0].lstrip())]
            result.extend(textwrap.wrap(" ".join(line.strip() for line in paragraph), width,
                                        initial_indent=indent, subsequent_indent=indent))
        else:
            result.extend(paragraph)
        paragraph.clear()

    in_docstring = False
    for line in lines:
        in_docstring = (in_docstring or line == "Docstring:") and line != "Options:"
        if in_docstring and line.startswith("  ") and line.strip():
            paragraph.append(line)
        else:
            flush()
            result.append(line)
    flush()
    return result


def _help_that_fits(original):
    """`inv --help TASK` within the terminal, 80 columns when piped."""
    def print_task_help(program: Program, name: str) -> None:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            original(program, name)
        width = shutil.get_terminal_size((80, 24)).columns if sys.stdout.isatty() else 80
        try:
            print("\n".join(fitted_help(out.getvalue().splitlines(), width)))
        except BrokenPipeError:  # `inv --help up | head`: the reader has seen enough
            sys.stderr.close()
            raise SystemExit(0)
    print_task_help.adjusted = True
    return print_task_help


def adjust_program() -> None:
    """Bare `inv` lists the tasks; a flag without its value gets a sentence that names it; the
    root collection shows value names in help.

    invoke builds its Program before it reads tasks.py, so these are set on the class.
    """
    Program.no_tasks_given = _list_tasks_when_none_given
    if not getattr(Program.parse_tasks, "adjusted", False):
        Program.parse_tasks = _parse_tasks_with_plain_errors(Program.parse_tasks)
    if not getattr(Program.print_task_help, "adjusted", False):
        Program.print_task_help = _help_that_fits(Program.print_task_help)

