// Package rotation lets a writer adopt a new InfluxDB API token without
// losing a point.
//
// InfluxDB has no in-place token rotation: a new token is created, every
// writer must adopt it, and only then may the old one be revoked. This package
// is the writer's half of that protocol, with no dependency on Telegraf:
//
//   - Credential holds a token and shows only its fingerprint when printed,
//     logged or marshalled.
//   - A Source (file or Kubernetes secret mount, environment variable, static
//     value) reports new tokens; FileSource watches the parent directory with
//     fsnotify and re-reads periodically as a safety net.
//   - A Prober validates a token with a side-effect-free empty write before
//     it is ever used.
//   - Rotator is the swap state machine: it keeps the active, candidate and
//     previous credentials, promotes a validated candidate between flushes,
//     and decides what to do when a write is refused.
//   - Classify is the one place that decides what a write response means.
//   - Scrubber holds every token the process sends and is the one way to
//     quote a server's message (ServerMessage, Classify): an echoed token,
//     plain, base64 or URL-escaped, becomes its fingerprint.
//   - AdoptionReporter tells the controller which token a writer writes
//     with: a small point, written with that token, at start, after each
//     change and every few minutes.
//   - Stats and AuditLog record what happened, never the token itself.
package rotation
