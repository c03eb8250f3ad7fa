//! The simulated training job: a loss curve that falls faster with a higher learning rate,
//! turns unstable when the rate is far too high, and carries a little seeded noise.

use std::collections::VecDeque;

use crate::proto::{BatchMetrics, JobState, JobStatus};

/// Highest learning rate a command or restart may set.
pub const MAX_LEARNING_RATE: f64 = 10.0;
/// Most steps a job may be given.
pub const MAX_TOTAL_STEPS: u64 = 10_000_000;
/// Most notes a job keeps; older ones are dropped first.
pub const MAX_NOTES: usize = 100;
/// Longest note text, in characters.
pub const MAX_NOTE_CHARS: usize = 1000;

/// Batches per epoch (the epoch number is only a label on the metrics).
const STEPS_PER_EPOCH: u64 = 100;
/// Loss of an untrained model (ln 10: ten balanced classes).
const INITIAL_LOSS: f64 = std::f64::consts::LN_10;
/// Loss the model approaches with enough training.
const FLOOR_LOSS: f64 = 0.08;
/// The learning rate at which one step is one unit of progress.
const REFERENCE_LEARNING_RATE: f64 = 0.01;
/// Units of progress over which the excess loss falls to 1/e.
const DECAY_PROGRESS: f64 = 250.0;
/// Above this learning rate training turns unstable and the loss climbs.
const UNSTABLE_LEARNING_RATE: f64 = 0.5;
/// Relative size of the per-batch noise.
const NOISE: f64 = 0.04;

/// A setting a client asked for that the job cannot take.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum JobError {
    #[error("learning rate must be a number above 0 and at most {MAX_LEARNING_RATE}, got {0}")]
    LearningRate(f64),
    #[error("total steps must be at most {MAX_TOTAL_STEPS}, got {0}")]
    TotalSteps(u64),
    #[error("the job has finished; restart it first")]
    Finished,
    #[error("note {index}: {reason}")]
    Note { index: u32, reason: String },
}

/// Checks a learning rate a client sent.
pub fn check_learning_rate(rate: f64) -> Result<f64, JobError> {
    if rate.is_finite() && rate > 0.0 && rate <= MAX_LEARNING_RATE {
        Ok(rate)
    } else {
        Err(JobError::LearningRate(rate))
    }
}

/// The job's whole state; the server keeps one behind a mutex.
#[derive(Debug)]
pub struct Job {
    id: String,
    state: JobState,
    step: u64,
    total_steps: u64,
    learning_rate: f64,
    seed: u64,
    loss: f64,
    /// Training progress so far (steps weighted by learning rate).
    progress: f64,
    /// Extra loss from unstable steps; decays once the rate is sane again.
    instability: f64,
    notes: VecDeque<(u64, String)>,
    run: u32,
}

impl Job {
    /// A fresh running job.
    pub fn new(total_steps: u64, learning_rate: f64, seed: u64) -> Result<Self, JobError> {
        let learning_rate = check_learning_rate(learning_rate)?;
        if total_steps > MAX_TOTAL_STEPS {
            return Err(JobError::TotalSteps(total_steps));
        }
        Ok(Self {
            id: format!("job-{seed}"),
            state: JobState::Running,
            step: 0,
            total_steps,
            learning_rate,
            seed,
            loss: 0.0,
            progress: 0.0,
            instability: 0.0,
            notes: VecDeque::new(),
            run: 1,
        })
    }

    /// The status message for this moment.
    pub fn status(&self) -> JobStatus {
        JobStatus {
            job_id: self.id.clone(),
            state: self.state as i32,
            step: self.step,
            total_steps: self.total_steps,
            epoch: self.epoch(),
            learning_rate: self.learning_rate,
            loss: self.loss,
            notes: u32::try_from(self.notes.len()).unwrap_or(u32::MAX),
            run: self.run,
        }
    }

    pub fn state(&self) -> JobState {
        self.state
    }

    fn epoch(&self) -> u32 {
        u32::try_from(self.step / STEPS_PER_EPOCH).unwrap_or(u32::MAX)
    }

    /// Trains one batch if the job is running; a job that reaches its last step finishes.
    pub fn advance(&mut self, unix_ms: i64) -> Option<BatchMetrics> {
        if self.state != JobState::Running {
            return None;
        }
        if self.step >= self.total_steps {
            self.state = JobState::Finished;
            return None;
        }
        self.step += 1;
        self.progress += self.learning_rate.min(UNSTABLE_LEARNING_RATE) / REFERENCE_LEARNING_RATE;
        if self.learning_rate > UNSTABLE_LEARNING_RATE {
            self.instability += (self.learning_rate - UNSTABLE_LEARNING_RATE) * 0.02;
        } else {
            self.instability *= 0.97;
        }
        let trained =
            FLOOR_LOSS + (INITIAL_LOSS - FLOOR_LOSS) * (-self.progress / DECAY_PROGRESS).exp();
        let noise = NOISE * trained * (2.0 * unit_noise(self.seed, self.run, self.step) - 1.0);
        self.loss = (trained + self.instability + noise).max(0.0);
        if self.step >= self.total_steps {
            self.state = JobState::Finished;
        }
        Some(BatchMetrics {
            step: self.step,
            epoch: self.epoch(),
            loss: self.loss,
            accuracy: (1.0 - self.loss / INITIAL_LOSS).clamp(0.0, 1.0),
            learning_rate: self.learning_rate,
            unix_ms,
            run: self.run,
        })
    }

    /// Pauses a running job (a paused one stays paused).
    pub fn pause(&mut self) -> Result<&'static str, JobError> {
        match self.state {
            JobState::Finished => Err(JobError::Finished),
            JobState::Paused => Ok("already paused"),
            _ => {
                self.state = JobState::Paused;
                Ok("paused")
            }
        }
    }

    /// Resumes a paused job.
    pub fn resume(&mut self) -> Result<&'static str, JobError> {
        match self.state {
            JobState::Finished => Err(JobError::Finished),
            JobState::Paused => {
                self.state = JobState::Running;
                Ok("resumed")
            }
            _ => Ok("already running"),
        }
    }

    /// Changes the learning rate from the next step on.
    pub fn set_learning_rate(&mut self, rate: f64) -> Result<(), JobError> {
        self.learning_rate = check_learning_rate(rate)?;
        Ok(())
    }

    /// Starts again from step 0; a zero argument keeps the current setting.
    pub fn restart(
        &mut self,
        seed: u64,
        total_steps: u64,
        learning_rate: f64,
    ) -> Result<(), JobError> {
        let learning_rate = if learning_rate == 0.0 {
            self.learning_rate
        } else {
            check_learning_rate(learning_rate)?
        };
        if total_steps > MAX_TOTAL_STEPS {
            return Err(JobError::TotalSteps(total_steps));
        }
        let run = self.run.saturating_add(1);
        let seed = if seed == 0 { self.seed } else { seed };
        let total_steps = if total_steps == 0 {
            self.total_steps
        } else {
            total_steps
        };
        *self = Self {
            run,
            ..Self::new(total_steps, learning_rate, seed)?
        };
        Ok(())
    }

    /// Checks a note's text; the caller reports `index` (1-based) in the error.
    pub fn check_note(index: u32, text: &str) -> Result<(), JobError> {
        let chars = text.chars().count();
        if text.trim().is_empty() {
            return Err(JobError::Note {
                index,
                reason: "text is empty".to_owned(),
            });
        }
        if chars > MAX_NOTE_CHARS {
            return Err(JobError::Note {
                index,
                reason: format!(
                    "text has {chars} characters, at most {MAX_NOTE_CHARS} are allowed"
                ),
            });
        }
        Ok(())
    }

    /// Keeps a (checked) note, dropping the oldest past [`MAX_NOTES`]; returns how many are kept.
    pub fn add_note(&mut self, step: u64, text: String) -> usize {
        let step = if step == 0 { self.step } else { step };
        if self.notes.len() >= MAX_NOTES {
            self.notes.pop_front();
        }
        self.notes.push_back((step, text));
        self.notes.len()
    }
}

/// A number in [0, 1) from the seed, run and step (splitmix64), so a run's curve repeats.
fn unit_noise(seed: u64, run: u32, step: u64) -> f64 {
    let mut z = seed
        .wrapping_add(u64::from(run).wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(step.wrapping_mul(0xBF58_476D_1CE4_E5B9));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_falls_with_training_and_faster_with_a_higher_rate() {
        let mut slow = Job::new(1000, 0.005, 7).unwrap();
        let mut fast = Job::new(1000, 0.05, 7).unwrap();
        let first = slow.advance(0).unwrap().loss;
        let (mut slow_loss, mut fast_loss) = (0.0, 0.0);
        for _ in 0..300 {
            slow_loss = slow.advance(0).unwrap().loss;
            fast_loss = fast.advance(0).unwrap().loss;
        }
        assert!(slow_loss < first, "{slow_loss} !< {first}");
        assert!(fast_loss < slow_loss, "{fast_loss} !< {slow_loss}");
    }

    #[test]
    fn a_far_too_high_rate_makes_the_loss_climb() {
        let mut job = Job::new(10_000, 0.05, 3).unwrap();
        for _ in 0..500 {
            job.advance(0);
        }
        let trained = job.status().loss;
        job.set_learning_rate(5.0).unwrap();
        for _ in 0..100 {
            job.advance(0);
        }
        assert!(
            job.status().loss > trained + 1.0,
            "{} vs {trained}",
            job.status().loss
        );
    }

    #[test]
    fn the_same_seed_gives_the_same_curve() {
        let mut a = Job::new(100, 0.01, 11).unwrap();
        let mut b = Job::new(100, 0.01, 11).unwrap();
        for _ in 0..50 {
            assert_eq!(a.advance(5).unwrap(), b.advance(5).unwrap());
        }
    }

    #[test]
    fn a_job_finishes_at_its_last_step_and_refuses_pause() {
        let mut job = Job::new(3, 0.01, 1).unwrap();
        assert!(job.advance(0).is_some());
        assert!(job.advance(0).is_some());
        assert!(job.advance(0).is_some());
        assert_eq!(job.state(), JobState::Finished);
        assert!(job.advance(0).is_none());
        assert_eq!(job.pause(), Err(JobError::Finished));
        job.restart(0, 0, 0.0).unwrap();
        assert_eq!(job.state(), JobState::Running);
        assert_eq!(job.status().run, 2);
        assert_eq!(job.status().step, 0);
    }

    #[test]
    fn bad_settings_are_refused() {
        for rate in [0.0, -1.0, f64::NAN, f64::INFINITY, MAX_LEARNING_RATE * 2.0] {
            assert!(check_learning_rate(rate).is_err(), "{rate}");
        }
        assert!(Job::new(MAX_TOTAL_STEPS + 1, 0.01, 1).is_err());
        assert!(Job::check_note(1, "  ").is_err());
        assert!(Job::check_note(2, &"x".repeat(MAX_NOTE_CHARS + 1)).is_err());
        assert!(Job::check_note(3, "fine").is_ok());
    }

    #[test]
    fn notes_are_bounded() {
        let mut job = Job::new(10, 0.01, 1).unwrap();
        for i in 0..(MAX_NOTES + 20) {
            job.add_note(0, format!("note {i}"));
        }
        assert_eq!(job.status().notes as usize, MAX_NOTES);
    }
}
