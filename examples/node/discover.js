#!/usr/bin/env node
// Discover a Parley server's API through gRPC server reflection: no .proto files needed.
//
//   node discover.js [HOST:PORT] [SYMBOL]
//
// Lists the services the server offers, then describes SYMBOL (default
// parley.v1.DialogueService): a service's RPCs with their request and response types,
// or a message's fields. --json prints the same as one JSON object.
'use strict';

const { parseArgs } = require('node:util');
const grpc = require('@grpc/grpc-js');
const { Client } = require('grpc-reflection-js');
const { describeError, formatError } = require('./status');

const DEFAULT_SYMBOL = 'parley.v1.DialogueService';

function strip(typeName) {
  return typeName.replace(/^\./, '');
}

function describeService(service) {
  return {
    kind: 'service',
    name: strip(service.fullName),
    methods: service.methodsArray.map((method) => ({
      name: method.name,
      requestType: strip(method.resolvedRequestType.fullName),
      requestStream: Boolean(method.requestStream),
      responseType: strip(method.resolvedResponseType.fullName),
      responseStream: Boolean(method.responseStream),
    })),
  };
}

function describeMessage(type) {
  return {
    kind: 'message',
    name: strip(type.fullName),
    fields: type.fieldsArray.map((field) => ({
      name: field.name,
      number: field.id,
      type: field.resolvedType ? strip(field.resolvedType.fullName) : field.type,
      repeated: field.repeated,
      map: field.map,
      oneof: field.partOf ? field.partOf.name : undefined,
    })),
  };
}

function printService(described) {
  console.log(`service ${described.name} {`);
  for (const m of described.methods) {
    const request = `${m.requestStream ? 'stream ' : ''}${m.requestType}`;
    const response = `${m.responseStream ? 'stream ' : ''}${m.responseType}`;
    console.log(`  rpc ${m.name}(${request}) returns (${response});`);
  }
  console.log('}');
}

function printMessage(described) {
  console.log(`message ${described.name} {`);
  for (const f of described.fields) {
    const label = f.map ? 'map ' : f.repeated ? 'repeated ' : '';
    const oneof = f.oneof ? `  // oneof ${f.oneof}` : '';
    console.log(`  ${label}${f.type} ${f.name} = ${f.number};${oneof}`);
  }
  console.log('}');
}

async function main() {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { json: { type: 'boolean', default: false } },
  });
  const server = positionals[0] || process.env.PARLEY_SERVER || '127.0.0.1:50051';
  const symbol = positionals[1] || DEFAULT_SYMBOL;
  const reflection = new Client(server, grpc.credentials.createInsecure());
  try {
    const services = await reflection.listServices();
    const root = await reflection.fileContainingSymbol(symbol);
    const found = root.lookup(symbol);
    if (found === null) {
      throw new Error(`${symbol} is not in the descriptors the server returned`);
    }
    found.resolveAll();
    const described = found.methodsArray ? describeService(found) : describeMessage(found);
    if (values.json) {
      console.log(JSON.stringify({ services, described }));
    } else {
      console.log('services:');
      for (const name of services) console.log(`  ${name}`);
      console.log();
      (described.kind === 'service' ? printService : printMessage)(described);
    }
    return 0;
  } catch (error) {
    if (error.code === undefined) {
      console.error(`error: ${error.message}`);
    } else {
      console.error(formatError(describeError(error)));
    }
    return 1;
  } finally {
    reflection.grpcClient?.close?.();
  }
}

main().then((code) => {
  process.exitCode = code;
});
