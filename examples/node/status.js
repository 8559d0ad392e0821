// Rich gRPC errors: the google.rpc.Status a Parley server puts in the trailer
// `grpc-status-details-bin`, decoded into its ErrorInfo and BadRequest details.
//
// grpc-js hands the trailers over as `error.metadata`; the Status inside is a protobuf
// message whose `details` are `google.protobuf.Any`s. The few google.rpc types needed are
// declared here (field numbers as in googleapis' google/rpc/*.proto), so no extra
// download is needed.
'use strict';

const protobuf = require('protobufjs');
const grpc = require('@grpc/grpc-js');

const GOOGLE_PROTOBUF = `
syntax = "proto3";
package google.protobuf;
message Any { string type_url = 1; bytes value = 2; }
message Duration { int64 seconds = 1; int32 nanos = 2; }
`;

const GOOGLE_RPC = `
syntax = "proto3";
package google.rpc;
message Status { int32 code = 1; string message = 2; repeated google.protobuf.Any details = 3; }
message ErrorInfo { string reason = 1; string domain = 2; map<string, string> metadata = 3; }
message BadRequest {
  message FieldViolation { string field = 1; string description = 2; string reason = 3; }
  repeated FieldViolation field_violations = 1;
}
message RetryInfo { google.protobuf.Duration retry_delay = 1; }
`;

const root = new protobuf.Root();
protobuf.parse(GOOGLE_PROTOBUF, root, { keepCase: true });
protobuf.parse(GOOGLE_RPC, root, { keepCase: true });
const Status = root.lookupType('google.rpc.Status');
const DETAIL_TYPES = ['google.rpc.ErrorInfo', 'google.rpc.BadRequest', 'google.rpc.RetryInfo'];

/** The name of a numeric gRPC status code, for example 5 -> "NOT_FOUND". */
function codeName(code) {
  return Object.keys(grpc.status).find((name) => grpc.status[name] === code) || String(code);
}

/**
 * Everything a Parley error carries: `{code, codeName, message, reason, domain, metadata,
 * fieldViolations, retryDelay}`. Works for any grpc-js ServiceError; without the details
 * trailer (for example UNAVAILABLE raised by the channel itself) only code and message
 * are set.
 */
function describeError(error) {
  const described = {
    code: error.code,
    codeName: codeName(error.code),
    message: error.details || error.message,
    reason: '',
    domain: '',
    metadata: {},
    fieldViolations: [],
  };
  const raw = error.metadata ? error.metadata.get('grpc-status-details-bin') : [];
  if (!raw || raw.length === 0) {
    return described;
  }
  const status = Status.decode(raw[0]);
  for (const any of status.details) {
    const typeName = any.type_url.slice(any.type_url.lastIndexOf('/') + 1);
    if (!DETAIL_TYPES.includes(typeName)) {
      continue; // a detail type this client does not know: skip it
    }
    const type = root.lookupType(typeName);
    const detail = type.toObject(type.decode(any.value), { longs: String });
    if (typeName === 'google.rpc.ErrorInfo') {
      described.reason = detail.reason || '';
      described.domain = detail.domain || '';
      described.metadata = detail.metadata || {};
    } else if (typeName === 'google.rpc.BadRequest') {
      for (const violation of detail.field_violations || []) {
        described.fieldViolations.push({
          field: violation.field || '',
          description: violation.description || '',
        });
      }
    } else if (typeName === 'google.rpc.RetryInfo' && detail.retry_delay) {
      const delay = detail.retry_delay;
      described.retryDelay = Number(delay.seconds || 0) + (delay.nanos || 0) / 1e9;
    }
  }
  return described;
}

/** One readable block for people: the status, its reason, every bad field. */
function formatError(described) {
  let text = `error: ${described.codeName}: ${described.message}`;
  if (described.reason) {
    text += `\n  reason: ${described.reason} (domain ${described.domain})`;
  }
  for (const violation of described.fieldViolations) {
    text += `\n  - ${violation.field}: ${violation.description}`;
  }
  if (described.retryDelay !== undefined) {
    text += `\n  retry after ${described.retryDelay} s`;
  }
  return text;
}

module.exports = { codeName, describeError, formatError };
