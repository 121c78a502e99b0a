//! `maml train --mpi`: data-parallel meta-training over the processes of an MPI job
//! (`mpirun -np M maml train ... --mpi`), on rsmpi over the system's MPI library.
//!
//! Rank r takes its share of every meta-batch, drawn from the same seeded stream on
//! every rank; the shares' meta-gradients (and meta-losses), each scaled by its share of
//! the tasks, are summed with one `MPI_Allreduce` of a single flat buffer per meta step,
//! so every rank applies the same update. Rank 0 reads the inputs, sends the run's start
//! (configuration, weights, step) to the others, and alone writes to `--out`.

use burn::prelude::Backend;
use burn::tensor::{DType, Tensor, TensorData};
use mpi::collective::SystemOperation;
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator, CommunicatorCollectives, Root};

use crate::error::CliError;

/// This process's place in the MPI job. Dropping it finalises MPI.
pub struct MpiJob {
    universe: Universe,
    /// This process's rank.
    pub rank: usize,
    /// The number of processes.
    pub size: usize,
}

impl MpiJob {
    /// Initialises MPI (serialised threading: the training thread is not the main one).
    pub fn init() -> Result<Self, CliError> {
        let (universe, _) = mpi::initialize_with_threading(mpi::Threading::Serialized)
            .ok_or_else(|| CliError::Usage("MPI is already initialised in this process".into()))?;
        let world = universe.world();
        Ok(Self {
            rank: world.rank() as usize,
            size: world.size() as usize,
            universe,
        })
    }

    /// Sends rank 0's `bytes` to every rank; returns them on every rank.
    pub fn broadcast(&self, bytes: Vec<u8>) -> Vec<u8> {
        let world = self.universe.world();
        let root = world.process_at_rank(0);
        let mut len = bytes.len() as u64;
        root.broadcast_into(&mut len);
        let mut buffer = if self.rank == 0 {
            bytes
        } else {
            vec![0u8; len as usize]
        };
        root.broadcast_into(&mut buffer[..]);
        buffer
    }

    /// Ends every process of the job (`MPI_Abort`) with exit status `code`: the way out
    /// of an error that only this rank has, which would leave the others waiting in an
    /// all-reduce.
    pub fn abort(&self, code: i32) -> ! {
        self.universe.world().abort(code)
    }
}

/// Sums `flat` (`[n]`) over the ranks of the job, in its own float type.
pub fn all_reduce_sum<B: Backend>(flat: Tensor<B, 1>) -> Result<Tensor<B, 1>, String> {
    let world = SimpleCommunicator::world();
    let device = flat.device();
    let data = flat.into_data();
    let shape = data.shape.clone();
    let summed = match data.dtype {
        DType::F64 => {
            let send = data.to_vec::<f64>().map_err(|e| format!("{e:?}"))?;
            let mut recv = vec![0f64; send.len()];
            world.all_reduce_into(&send[..], &mut recv[..], SystemOperation::sum());
            TensorData::new(recv, shape)
        }
        DType::F32 => {
            let send = data.to_vec::<f32>().map_err(|e| format!("{e:?}"))?;
            let mut recv = vec![0f32; send.len()];
            world.all_reduce_into(&send[..], &mut recv[..], SystemOperation::sum());
            TensorData::new(recv, shape)
        }
        other => return Err(format!("cannot all-reduce {other:?} tensors over MPI")),
    };
    Ok(Tensor::from_data(summed, &device))
}
