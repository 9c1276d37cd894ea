-- The dashboard's "processors whose last call failed" reads each processor's latest task.
CREATE INDEX tasks_processor_updated ON tasks (processor, updated_at);
