"""A two-bot IntelMQ pipeline without Redis, for .ci/intelmq-e2e.

IntelMQ's stock Shadowserver parser (intelmq.bots.parsers.shadowserver.parser)
reads a Shadowserver CSV report; its stock REST API output bot
(intelmq.bots.outputs.restapi.output) POSTs each event to Varsel. The bots
run in IntelMQ's library mode on its `pythonlist` pipeline, the in-memory
pipeline IntelMQ's own test harness (intelmq.lib.test) uses: messages pass
between the bots serialised, as through Redis, and each bot runs through
Bot.start(), IntelMQ's real processing loop with its error handling.

Commands (the result is one JSON object on stdout; exit 1 when an
expectation fails, with the reason on stderr):

  parse  --csv F --file-name N --schema S [--feed-name X] [--hierarchical]
         print the events the parser makes, one JSON object per line
  send   --csv F --file-name N --schema S [--feed-name X] [--hierarchical]
         --url U --token T
         parse, then send every event; every one must log "Sent message."
  reject --csv F --file-name N --schema S --url U --token T
         send the first event without source.ip, which Varsel must refuse:
         the bot must fail on it and dump it (IntelMQ's error path), and
         never log "Sent message."

The parser cannot download Shadowserver's schema here: --schema is copied to
where the parser reads it, $INTELMQ_ROOT_DIR/var/lib/bots/
shadowserver-schema.json, in a temporary INTELMQ_ROOT_DIR.
"""

import argparse
import base64
import json
import logging
import os
import shutil
import sys
import tempfile

# IntelMQ's stream logging writes debug and info lines to whatever
# sys.stdout is when it logs: keep stdout for the result, send those to stderr.
RESULT = sys.stdout
sys.stdout = sys.stderr

# IntelMQ reads INTELMQ_ROOT_DIR when it is imported: set it first.
ROOT = tempfile.mkdtemp(prefix="varsel-intelmq-")
os.environ["INTELMQ_ROOT_DIR"] = ROOT

from intelmq.bots.outputs.restapi.output import RestAPIOutputBot  # noqa: E402
from intelmq.bots.parsers.shadowserver.parser import ShadowserverParserBot  # noqa: E402
from intelmq.lib import message, pipeline  # noqa: E402

# Settings every bot here gets: library-mode pipelines, logs in memory, no
# retries (a failure is final at once), no Redis statistics worth waiting for.
COMMON = {
    "source_pipeline_broker": "pythonlist",
    "destination_pipeline_broker": "pythonlist",
    "logging_handler": "stream",
    "logging_path": None,
    "logging_level": "DEBUG",
    "error_max_retries": 0,
    "error_retry_delay": 0,
    "rate_limit": 0,
    "http_timeout_sec": 30,
    "http_timeout_max_tries": 1,
}


class Fail(Exception):
    pass


class Captured(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def make_bot(cls, bot_id, settings, parameters=None):
    """The bot `bot_id`, configured as a deployment would in runtime.yaml
    (`parameters`), with this run's pipeline and error settings on top."""
    runtime = {
        "global": {},
        bot_id: {
            "group": cls.__name__.removesuffix("Bot"),
            "module": cls.__module__,
            "parameters": parameters or {},
        },
    }
    os.makedirs(os.path.join(ROOT, "etc"), exist_ok=True)
    # JSON is YAML: IntelMQ reads it as its runtime.yaml.
    with open(os.path.join(ROOT, "etc", "runtime.yaml"), "w") as f:
        json.dump(runtime, f, indent=2)
    bot = cls(bot_id, settings={**COMMON, **settings})
    log = Captured()
    bot.logger.addHandler(log)
    pipe = pipeline.Pythonlist(logger=bot.logger, pipeline_args={}, load_balance=False)
    pipe.set_queues(settings["source_queue"], "source")
    pipe.set_queues(settings["destination_queues"], "destination")
    return bot, pipe, log


def parse(args):
    """The events IntelMQ's Shadowserver parser makes of the report, serialised."""
    schema_dir = os.path.join(ROOT, "var", "lib", "bots")
    os.makedirs(schema_dir, exist_ok=True)
    shutil.copy(args.schema, os.path.join(schema_dir, "shadowserver-schema.json"))

    with open(args.csv, "rb") as f:
        csv = f.read()
    # What IntelMQ's Shadowserver collectors hand the parser: the report, its
    # file name, and the feed fields of the collector's own configuration.
    report = message.Report(harmonization=None)
    report.add("raw", base64.b64encode(csv).decode(), sanitize=False)
    report.add("extra.file_name", args.file_name)
    report.add("time.observation", "2021-03-11T07:00:00+00:00", overwrite=True)
    if args.feed_name:
        report.add("feed.name", args.feed_name)

    bot, pipe, log = make_bot(
        ShadowserverParserBot,
        "shadowserver-parser",
        {
            "source_queue": "parser-input",
            "destination_queues": {"_default": ["parser-output"]},
            # One message per start(), as in IntelMQ's test harness.
            "testing": True,
        },
    )
    pipe.state["parser-input"] = [report.serialize()]
    bot.start(error_on_pipeline=False, source_pipeline=pipe, destination_pipeline=pipe)
    if pipe.state["parser-input"] or any("Bot has found a problem" in line for line in log.lines):
        raise Fail("the parser failed on the report:\n" + "\n".join(log.lines))
    events = list(pipe.state["parser-output"])
    if not events:
        raise Fail("the parser made no events:\n" + "\n".join(log.lines))
    return events


def output_bot(args, bot_id, extra):
    # The REST API output bot's parameters as README.md ("IntelMQ") gives them.
    parameters = {
        "host": args.url,
        "auth_type": "http_header",
        "auth_token_name": "Authorization",
        "auth_token": "Bearer " + args.token,
        "use_json": True,
        "hierarchical_output": args.hierarchical,
    }
    return make_bot(
        RestAPIOutputBot,
        bot_id,
        {"source_queue": bot_id + "-input", "destination_queues": {}, **extra},
        parameters,
    )


def send(args):
    events = parse(args)
    bot, pipe, log = output_bot(args, "varsel-output", {"testing": True})
    pipe.state["varsel-output-input"] = list(events)
    for n in range(1, len(events) + 1):
        bot.start(error_on_pipeline=False, source_pipeline=pipe, destination_pipeline=pipe)
        sent = sum(line == "Sent message." for line in log.lines)
        if sent != n or any("Bot has found a problem" in line for line in log.lines):
            raise Fail(f"event {n} was not sent:\n" + "\n".join(log.lines))
    if pipe.state["varsel-output-input"]:
        raise Fail("events left in the output bot's queue")
    return {"parsed": len(events), "sent": len(events), "hierarchical": args.hierarchical}


def reject(args):
    first = message.MessageFactory.unserialize(parse(args)[0])
    del first["source.ip"]
    dump_dir = os.path.join(ROOT, "dump")
    os.makedirs(dump_dir)
    bot, pipe, log = output_bot(
        args,
        "varsel-output-rejected",
        {
            # IntelMQ's production settings for failures: dump the message,
            # then (so that this run ends) stop instead of waiting for more.
            "testing": False,
            "error_dump_message": True,
            "error_procedure": "stop",
            "logging_path": dump_dir,
        },
    )
    pipe.state["varsel-output-rejected-input"] = [first.serialize()]
    try:
        bot.start(error_on_pipeline=False, source_pipeline=pipe, destination_pipeline=pipe)
    except ValueError as e:
        # Library mode reports the stop that error_procedure "stop" asked for.
        stopped = str(e)
    else:
        raise Fail("the output bot carried on after Varsel refused the event")
    if "Sent message." in log.lines:
        raise Fail("the bot logged 'Sent message.' for an event Varsel refused")
    dump_file = os.path.join(dump_dir, "varsel-output-rejected.dump")
    if not os.path.exists(dump_file):
        raise Fail("the refused event was not dumped:\n" + "\n".join(log.lines))
    with open(dump_file) as f:
        dump = json.load(f)
    (entry,) = dump.values()
    traceback = "".join(entry["traceback"])
    if "422" not in traceback:
        raise Fail("the dump's traceback does not name the 422:\n" + traceback)
    dumped = json.loads(entry["message"])
    if "source.ip" in dumped or dumped.get("time.source") != first["time.source"]:
        raise Fail("the dump does not hold the refused event: " + entry["message"])
    return {
        "dumped": True,
        "error": traceback.strip().splitlines()[-1],
        "stopped": stopped,
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("command", choices=["parse", "send", "reject"])
    p.add_argument("--csv", required=True)
    p.add_argument("--file-name", required=True)
    p.add_argument("--schema", required=True)
    p.add_argument("--feed-name")
    p.add_argument("--hierarchical", action="store_true")
    p.add_argument("--url")
    p.add_argument("--token")
    args = p.parse_args()
    if args.command != "parse" and not (args.url and args.token):
        p.error(f"{args.command} needs --url and --token")
    try:
        if args.command == "parse":
            for raw in parse(args):
                event = message.MessageFactory.unserialize(raw)
                print(
                    json.dumps(event.to_dict(hierarchical=args.hierarchical), sort_keys=True),
                    file=RESULT,
                )
            return 0
        result = send(args) if args.command == "send" else reject(args)
    except Fail as e:
        print(f"intelmq_pipeline: {e}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(ROOT, ignore_errors=True)
    print(json.dumps(result), file=RESULT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
