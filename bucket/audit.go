package bucket

import "path"

// AuditDir is the folder of a device's audit log segments below the
// prefix: <store>/<device>/audit. It holds no manifest.json, so List
// passes it by.
func AuditDir(store, device string) string { return path.Join(store, device, "audit") }
