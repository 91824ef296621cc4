DROP TABLE commits;
DROP TABLE repositories;
DROP TABLE project_members;
DROP TABLE projects;
