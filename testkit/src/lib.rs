//! Fixtures for the tests, the demo (`tools/demo`) and the benchmarks
//! (`tools/bench`), built with the real
//! tools (gpg, dpkg-deb, apt-ftparchive, rpmbuild, createrepo_c).
//! Nothing here fakes a package manager.

pub mod agent;
pub mod aptrepo;
pub mod aptroot;
pub mod channels;
pub mod deb;
pub mod etcd;
pub mod fleetlock;
pub mod gpg;
pub mod http;
pub mod proxy;
pub mod rpm;
pub mod rpmbase;
pub mod tls;
pub mod world;
