//! Process lifecycle: clone the init straight into its namespaces, walk it through numbered sync
//! points, exec into a running container.
