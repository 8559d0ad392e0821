#!/usr/bin/env node
// Create a Parley dialogue and stream one run, printing each turn the moment it arrives.
//
//   node run.js [--server HOST:PORT] [--dialogue ID] [--existing] [--delay-ms MS]
//               [--cancel-after N] [--timeout SECONDS] [--token TOKEN] [--json] [PROMPT]
//
// The client is generated at run time from the contract in ../../protos with
// @grpc/proto-loader. Errors are printed with their gRPC code and the google.rpc
// details the server sends (see status.js).
'use strict';

const path = require('node:path');
const crypto = require('node:crypto');
const { parseArgs } = require('node:util');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const { describeError, formatError } = require('./status');

const PROTOS = path.resolve(__dirname, '..', '..', 'protos');
const USAGE =
  'usage: node run.js [--server HOST:PORT] [--dialogue ID] [--existing] [--delay-ms MS]\n' +
  '                   [--cancel-after N] [--timeout SECONDS] [--token TOKEN] [--json] [PROMPT]';

function options() {
  try {
    return parseArgs({
      allowPositionals: true,
      options: {
        server: { type: 'string', default: process.env.PARLEY_SERVER || '127.0.0.1:50051' },
        dialogue: { type: 'string', default: `node-${crypto.randomBytes(3).toString('hex')}` },
        existing: { type: 'boolean', default: false },
        'delay-ms': { type: 'string', default: '300' },
        'cancel-after': { type: 'string' },
        timeout: { type: 'string' },
        token: { type: 'string', default: process.env.PARLEY_TOKEN },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (error) {
    console.error(`${error.message}\n${USAGE}`);
    process.exit(2);
  }
}

/** The DialogueService client class, loaded from the .proto files. */
function loadService() {
  const definition = protoLoader.loadSync(path.join(PROTOS, 'parley', 'v1', 'dialogue.proto'), {
    includeDirs: [PROTOS],
    keepCase: true, // field names as in the .proto: dialogue_id, turn_completed, ...
    longs: String, // int64 as strings, as in the proto JSON mapping
    enums: String,
    defaults: false,
    oneofs: true, // event.event names the member of the `event` oneof that is set
  });
  return grpc.loadPackageDefinition(definition).parley.v1.DialogueService;
}

/** Call options with a deadline, when --timeout asks for one. */
function callOptions(timeoutSeconds) {
  return timeoutSeconds ? { deadline: Date.now() + timeoutSeconds * 1000 } : {};
}

function milliseconds(duration) {
  if (!duration) return '';
  const value = Number(duration.seconds || 0) * 1000 + (duration.nanos || 0) / 1e6;
  return `${value.toFixed(1)} ms`;
}

function indent(text) {
  return text
    .split('\n')
    .map((line) => `  ${line}`)
    .join('\n');
}

/** One event as a person reads it. */
function describeEvent(event) {
  switch (event.event) {
    case 'started':
      return `turn ${event.turn} started: calling ${(event.started.participants || []).join(', ')}`;
    case 'routing':
      return `moderator decided: ${event.routing.raw_answer}`;
    case 'turn_completed': {
      const turn = event.turn_completed;
      const who = `${turn.speaker.icon ? `${turn.speaker.icon} ` : ''}${turn.speaker.name}`;
      const role = turn.speaker.role ? ` (${turn.speaker.role})` : '';
      return `${who}${role} · ${milliseconds(turn.latency)}\n${indent(turn.content)}`;
    }
    case 'turn_failed': {
      const failed = event.turn_failed;
      return `✗ ${failed.speaker.name} failed: ${failed.code}: ${failed.message}`;
    }
    case 'completed': {
      const done = event.completed;
      return `turn ${event.turn} completed: ${done.turn_count || 0} replies, ${done.failure_count || 0} failed`;
    }
    default:
      return `(an event this example does not know: ${JSON.stringify(event)})`;
  }
}

function createDialogue(client, args, metadata) {
  const request = {
    dialogue_id: args.dialogue,
    dialogue: {
      display_name: 'Tea time (Node.js)',
      participants: [
        {
          persona: { name: 'Ann', role: 'host', visual_identity: { icon: '🦊' } },
          agent: 'echo',
          agent_options: { delay_ms: args['delay-ms'] },
        },
        {
          persona: { name: 'Bob', role: 'guest', visual_identity: { icon: '🐻' } },
          agent: 'echo',
        },
      ],
    },
  };
  return new Promise((resolve, reject) => {
    client.CreateDialogue(request, metadata, callOptions(args.timeout), (error, dialogue) =>
      error ? reject(error) : resolve(dialogue),
    );
  });
}

/**
 * Streams one run. Resolves with how it ended: 'completed', 'cancelled' (by --cancel-after)
 * or 'incomplete'; rejects with the gRPC error otherwise.
 */
function runSession(client, args, metadata, print) {
  const cancelAfter = args['cancel-after'] === undefined ? null : Number(args['cancel-after']);
  return new Promise((resolve, reject) => {
    const call = client.RunSession(
      { dialogue: `dialogues/${args.dialogue}`, text: args.prompt },
      metadata,
      callOptions(args.timeout),
    );
    let turns = 0;
    let completed = false;
    let cancelled = false;
    call.on('data', (event) => {
      print(event, describeEvent(event));
      if (event.event === 'turn_completed' || event.event === 'turn_failed') {
        turns += 1;
      }
      if (event.event === 'completed') {
        completed = true;
      }
      if (cancelAfter !== null && turns >= cancelAfter && !completed && !cancelled) {
        // Cancelling the call is how a gRPC client says "stop": the server cancels the
        // agent calls still running and records the cancellation in the log.
        cancelled = true;
        call.cancel();
      }
    });
    call.on('error', (error) => {
      if (cancelled && error.code === grpc.status.CANCELLED) {
        resolve('cancelled');
      } else {
        reject(error);
      }
    });
    call.on('end', () => resolve(completed ? 'completed' : 'incomplete'));
  });
}

async function main() {
  const parsed = options();
  if (parsed.values.help) {
    console.log(USAGE);
    return 0;
  }
  const args = { ...parsed.values, prompt: parsed.positionals.join(' ') || 'Shall we start?' };
  const json = args.json;
  const print = (value, text) => console.log(json ? JSON.stringify(value) : text);

  const DialogueService = loadService();
  const client = new DialogueService(args.server, grpc.credentials.createInsecure());
  const metadata = new grpc.Metadata();
  if (args.token) {
    metadata.set('authorization', `Bearer ${args.token}`);
  }
  try {
    if (!args.existing) {
      const dialogue = await createDialogue(client, args, metadata);
      print({ created: dialogue }, `created ${dialogue.name}`);
    }
    const ending = await runSession(client, args, metadata, print);
    if (ending === 'cancelled') {
      print({ cancelled: { dialogue: `dialogues/${args.dialogue}` } }, 'cancelled the run');
    }
    return ending === 'incomplete' ? 1 : 0;
  } catch (error) {
    if (error.code === undefined) {
      throw error; // not a gRPC error: a bug in this script
    }
    const described = describeError(error);
    if (json) {
      console.log(JSON.stringify({ error: described }));
    } else {
      console.error(formatError(described));
    }
    return 1;
  } finally {
    client.close();
  }
}

main().then((code) => {
  process.exitCode = code;
});
