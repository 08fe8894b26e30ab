//! How results and progress reach people and machines.
