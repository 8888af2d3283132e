package agent

// Types of the agent's control API (docs/agent.md, "Control API"), shared
// by the agent and the orchestrator's client.

// SnapshotResult answers POST /v1/machines/{name}/snapshot: the point of
// every machine of the group, taken at one instant.
type SnapshotResult struct {
	Points map[string]string `json:"points"`
}

// RestoreRequest is the body of POST /v1/machines/{name}/restore.
type RestoreRequest struct {
	Point string `json:"point"`
	// Preserve: before writing, keep the disks' current state as a point
	// (tagged "haven.preserved"), so nothing the old primary wrote after
	// the failover is destroyed unseen.
	Preserve bool `json:"preserve"`
	// PreserveKey names this restore across retries: a point already
	// preserved under the key is used again, so a retry after a failed
	// restore never preserves its half-written disks as the "previous"
	// state. The orchestrator passes its job and machine.
	PreserveKey string `json:"preserve_key,omitempty"`
}

// RestoreResult says what a restore did to each disk.
type RestoreResult struct {
	// Preserved is the ID of the point that keeps the disks' previous
	// state ("" without Preserve). A failed restore answers it too (with
	// its error), once the disks' state is kept.
	Preserved string              `json:"preserved,omitempty"`
	Disks     []DiskRestoreResult `json:"disks"`
}

// DiskRestoreResult is one disk's restore.
type DiskRestoreResult struct {
	Disk         string `json:"disk"`
	Size         int64  `json:"size"`
	BytesWritten int64  `json:"bytes_written"`
	// Differing: bytes of the disk that differed from the point before
	// the restore (what the old primary wrote after the point).
	Differing int64 `json:"differing_bytes"`
}
