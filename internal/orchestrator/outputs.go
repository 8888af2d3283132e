package orchestrator

import (
	"time"

	"github.com/haven-dr/haven/internal/host"
	"github.com/haven-dr/haven/internal/store"
)

// Outputs is what a job's steps recorded; it is saved with the job after
// every step, so a resumed job knows what exists.
type Outputs struct {
	Started time.Time `json:"started"`
	// From is the plan's state when the job was submitted.
	From *store.PlanState `json:"from,omitempty"`
	// DiskJob: the job whose disk directory this job works on (a
	// change-point or failback acts on its failover's disks).
	DiskJob string `json:"disk_job,omitempty"`
	// Site the job brings machines up on (rec or test).
	Site string `json:"site,omitempty"`
	// Points chosen per machine.
	Points map[string]PointUse `json:"points,omitempty"`
	// PointChoice is the rule they were chosen by (latest when none was
	// asked); PointNotes say which instant each consistency group of
	// several machines got, and which newer points it passed over.
	PointChoice string   `json:"point_choice,omitempty"`
	PointNotes  []string `json:"point_notes,omitempty"`
	// Disks prepared: machine -> disk -> result.
	Disks    map[string]map[string]*host.DiskResult `json:"disks,omitempty"`
	Machines map[string]*MachineRun                 `json:"machines,omitempty"`
	// Placement: machine -> the recovery host this job prepared and
	// started it on (hosts.go).
	Placement map[string]string `json:"placement,omitempty"`
	// Overlay joins the site's hosts (overlay.go).
	Overlay *OverlayUse `json:"overlay,omitempty"`
	// Lost: machines a recover-machines job found on hosts that do not
	// answer (job_recover_machines.go).
	Lost []string `json:"lost,omitempty"`
	// ReplicationLeft: remote hosts a recover-machines moved the plan's
	// machines off (they did not answer), which may still hold the plan's
	// order of replication back; it is dropped there when they answer
	// (replication_move.go). Kept in the failover job.
	ReplicationLeft []string `json:"replication_left,omitempty"`
	// Resources this job created, in order; cancel removes them newest
	// first. Recorded before they are created.
	Resources []Resource `json:"resources,omitempty"`
	// DNS answered the new site at this time.
	DNSAt *time.Time `json:"dns_at,omitempty"`
	// DNSServers is what each traffic manager server answered then.
	DNSServers []ServerAnswer  `json:"dns_servers,omitempty"`
	Approved   map[string]bool `json:"approved,omitempty"`
	Warnings   []string        `json:"warnings,omitempty"`
	// Disaster is the earliest moment data loss is counted from
	// (unplanned); Disasters is each machine's, from its own agent.
	Disaster  *time.Time           `json:"disaster,omitempty"`
	Disasters map[string]time.Time `json:"disasters,omitempty"`
	// Fenced: primary machines an unplanned failover found running and
	// stopped through their agents.
	Fenced []string `json:"fenced,omitempty"`
	// Failback: what the primary's old disks got.
	Failback map[string]*FailbackDisk `json:"failback,omitempty"`
	// Preserved: machine -> point that keeps the old primary's state.
	Preserved map[string]string `json:"preserved,omitempty"`
}

// PointUse is the point a machine was recovered from.
type PointUse struct {
	ID          string    `json:"id"`
	Time        time.Time `json:"time"`
	Consistency string    `json:"consistency"`
	Group       string    `json:"group,omitempty"`
	// Final: taken after the machine was stopped (planned failover, or
	// an unplanned one that fenced it): nothing written is lost.
	Final bool `json:"final,omitempty"`
}

// MachineRun is a machine the job brought up.
type MachineRun struct {
	Address   string     `json:"address"`
	Started   *time.Time `json:"started,omitempty"`
	HealthyAt *time.Time `json:"healthy_at,omitempty"`
	Disks     []string   `json:"disks"`
	// Host is the recovery host it was started on.
	Host string `json:"host,omitempty"`
}

// FailbackDisk is what a failback wrote to one of the primary's disks.
type FailbackDisk struct {
	Machine      string `json:"machine"`
	Disk         string `json:"disk"`
	Size         int64  `json:"size"`
	BytesWritten int64  `json:"bytes_written"`
	// Differed: bytes of the old primary disk that differed from the
	// failover point when it was preserved (writes it took after).
	Differed int64 `json:"preserved_bytes_differing,omitempty"`
}

// Resource kinds.
const (
	ResSite    = "site"
	ResDisk    = "disk"
	ResMachine = "machine"
	ResDNS     = "dns"
	// ResPrimaryStopped: a primary machine the job stopped through its
	// agent (planned failover, fencing); cancel starts it again.
	ResPrimaryStopped = "primary-stopped"
	// ResPrimaryStarted: a primary a failback started; cancel stops it.
	ResPrimaryStarted = "primary-started"
	// ResRecoveryStopped: a recovery machine (production after a
	// failover) a failback stopped; cancel starts it again, first.
	ResRecoveryStopped = "recovery-stopped"
	// ResReplicationStopped: replication back of plan Name, stopped by a
	// failback; cancel starts it again.
	ResReplicationStopped = "replication-stopped"
	// ResNoReturn: the failback began removing the recovery copy; a
	// cancel from here on finishes the failback instead.
	ResNoReturn = "no-return"
	// ResReplicating: replication back of plan Name, set up by a
	// reprotect; cancel stops it and forgets it.
	ResReplicating = "replicating"
	// ResReplicationMoved: replication back of plan Name, set by a
	// recover-machines to the hosts its machines run on now; cancel sets
	// it again to where they run then (they are not moved back).
	ResReplicationMoved = "replication-moved"
	// ResDiskPoint: a change of point rewrote the disk at Path, which
	// held Point (of machine Name, disk Disk) before; cancel rewrites it
	// back.
	ResDiskPoint = "disk-point"
	// ResPublish: machine Name's services published on site Site (DNAT
	// and SNAT on the recovery host); undo removes them.
	ResPublish = "publish"
	// ResOverlay: site Site's overlay on host Host (overlay.go); undo
	// removes it there unless machines still run on the site there.
	ResOverlay = "overlay"
)

// Resource is something a job created on the recovery side.
type Resource struct {
	Kind  string `json:"kind"`
	Site  string `json:"site,omitempty"`
	Name  string `json:"name,omitempty"` // machine, or profile/endpoint
	Path  string `json:"path,omitempty"` // disk
	Disk  string `json:"disk,omitempty"`
	Point string `json:"point,omitempty"`
	// Host the disk or machine is on ("" before hosts were recorded:
	// where its machine is placed).
	Host string `json:"host,omitempty"`
	// DNS: the endpoint's settings before the change.
	Enabled  *bool `json:"enabled,omitempty"`
	Priority *int  `json:"priority,omitempty"`
}

func (r *run) record(res Resource) {
	for _, x := range r.out.Resources {
		if x.Kind == res.Kind && x.Site == res.Site && x.Name == res.Name && x.Path == res.Path && x.Host == res.Host {
			return
		}
	}
	r.out.Resources = append(r.out.Resources, res)
}
