package graph

// Network is what the rest of the library (qat's Prepare, Calibrate and Trainer, checkpoints,
// export) needs from a model, implemented by both model types of this package: a Model (an
// ordered list of layers: CNNs, MLPs) and an LM (a Llama-style transformer). It is deliberately
// small: the architecture record, the parameters, the quantizer sites and fusion groups, and the
// checkpoint state. Building a Gorgonia graph differs between the two (an image batch and a
// class-score output against token windows and next-token logits) and is reached through the
// concrete types.
type Network interface {
	// Arch returns the architecture record that checkpoints store (see FromCheckpoint).
	Arch() Arch
	// Params returns the parameters in creation order.
	Params() []*Param
	// Param returns the parameter with the given name, or nil.
	Param(name string) *Param
	// Sites lists the quantizer sites in graph order.
	Sites() []Site
	// Groups lists the fusion groups: the ops of the integer runtime that own the sites.
	Groups() []Group
	// HasLayer reports whether name is a layer of the network (a key for QConfig overrides).
	HasLayer(name string) bool
	// SaveState stores the parameters and the architecture in a checkpoint.
	SaveState(c *Checkpoint)
	// LoadState restores the parameters from a checkpoint.
	LoadState(c *Checkpoint) error
}

var (
	_ Network = (*Model)(nil)
	_ Network = (*LM)(nil)
)

// HasLayer reports whether the model has a layer with this name.
func (m *Model) HasLayer(name string) bool { _, ok := m.layerI[name]; return ok }
