PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
CREATE TABLE files (
	path VARCHAR(4096) NOT NULL, 
	version BIGINT NOT NULL, 
	size BIGINT NOT NULL, 
	sha256 VARCHAR(64) NOT NULL, 
	writer VARCHAR(254) NOT NULL, 
	mtime FLOAT NOT NULL, 
	blob VARCHAR(64) NOT NULL, 
	PRIMARY KEY (path)
);
INSERT INTO files VALUES('datasites/alice@x.org/syft.pub.yaml',1,58,'cbdbd6f42b8a74f60389a05cd32ece4e45a2c5af8fc8ffc8701f048bee85bec5','alice@x.org',1796434635.6801795959,'084fc5c922a3904d3bf4c81aec0c3d5d');
INSERT INTO files VALUES('datasites/alice@x.org/public/data.csv',2,8,'492d5ea496056f1a6a6592241032fab764c321596317930b4fa0e1e8bc3b7470','alice@x.org',1796434635.8447561263,'ff83acadaae3db3e9fe5579f5dbbb64c');
INSERT INTO files VALUES('datasites/alice@x.org/private/notes.txt',3,10,'f62d945cb45421a8c8e864d42076df05cd429485309404823d2a444bd5a2ebf4','alice@x.org',1796434636.0439054965,'821bb684b8a574880e0fe72df368b8bc');
INSERT INTO files VALUES('datasites/alice@x.org/public/renamed.txt',5,11,'63542bdbf9b13eec6754e64090e741f973f1c408db016f1e9b5bc9b6baa77ca8','alice@x.org',1796434636.3642098903,'2b7fbaef54d51223c1ff1c40137c1bdc');
INSERT INTO files VALUES('datasites/bob@x.org/hello.txt',6,11,'868ee009b3ca397dcaf1081afe58378e8f3444e700114cb34f65d66c4df6850c','bob@x.org',1796434636.4923274517,'c93f1b7ab35dcb6800dfc9b64095aff5');
CREATE TABLE changes (
	seq INTEGER NOT NULL, 
	op VARCHAR(8) NOT NULL, 
	path VARCHAR(4096) NOT NULL, 
	old_path VARCHAR(4096), 
	size BIGINT, 
	sha256 VARCHAR(64), 
	writer VARCHAR(254) NOT NULL, 
	time FLOAT NOT NULL, 
	PRIMARY KEY (seq)
);
INSERT INTO changes VALUES(1,'put','datasites/alice@x.org/syft.pub.yaml',NULL,58,'cbdbd6f42b8a74f60389a05cd32ece4e45a2c5af8fc8ffc8701f048bee85bec5','alice@x.org',1796434635.6801795959);
INSERT INTO changes VALUES(2,'put','datasites/alice@x.org/public/data.csv',NULL,8,'492d5ea496056f1a6a6592241032fab764c321596317930b4fa0e1e8bc3b7470','alice@x.org',1796434635.8447561263);
INSERT INTO changes VALUES(3,'put','datasites/alice@x.org/private/notes.txt',NULL,10,'f62d945cb45421a8c8e864d42076df05cd429485309404823d2a444bd5a2ebf4','alice@x.org',1796434636.0439054965);
INSERT INTO changes VALUES(4,'put','datasites/alice@x.org/public/moved.txt',NULL,11,'63542bdbf9b13eec6754e64090e741f973f1c408db016f1e9b5bc9b6baa77ca8','alice@x.org',1796434636.2325496674);
INSERT INTO changes VALUES(5,'move','datasites/alice@x.org/public/renamed.txt','datasites/alice@x.org/public/moved.txt',11,'63542bdbf9b13eec6754e64090e741f973f1c408db016f1e9b5bc9b6baa77ca8','alice@x.org',1796434636.3642098903);
INSERT INTO changes VALUES(6,'put','datasites/bob@x.org/hello.txt',NULL,11,'868ee009b3ca397dcaf1081afe58378e8f3444e700114cb34f65d66c4df6850c','bob@x.org',1796434636.4923274517);
CREATE TABLE sessions (
	id VARCHAR(32) NOT NULL, 
	email VARCHAR(254) NOT NULL, 
	refresh_hash VARCHAR(64) NOT NULL, 
	created FLOAT NOT NULL, 
	expires FLOAT NOT NULL, 
	revoked BOOLEAN NOT NULL, 
	PRIMARY KEY (id)
);
INSERT INTO sessions VALUES('7839399346b94f95a9a8ab52c34a9fcd','alice@x.org','79666bb4850765f1d5118b30c301dfc1031dfa46aa017555e424ec4f9db4873c',1796434635.4398543834,4796434635.439854622,0);
INSERT INTO sessions VALUES('de4e1e577ffe5004d1faec880c09342d','bob@x.org','674dfc8a3f688520e9d3042098df074904f2272544f859c4fffe52f304ac002b',1796434635.5853140354,4796434635.5853137971,0);
CREATE TABLE codes (
	email VARCHAR(254) NOT NULL, 
	code_hash VARCHAR(64) NOT NULL, 
	expires FLOAT NOT NULL, 
	attempts INTEGER NOT NULL, 
	PRIMARY KEY (email)
);
INSERT INTO codes VALUES('carol@x.org','97e227cb1b4d7a781a381143ac5bf91b7f378196166f979739c5896993500696',1796435236.6717975139,0);
CREATE TABLE uploads (
	id VARCHAR(32) NOT NULL, 
	path VARCHAR(4096) NOT NULL, 
	writer VARCHAR(254) NOT NULL, 
	size BIGINT NOT NULL, 
	created FLOAT NOT NULL, 
	PRIMARY KEY (id)
);
CREATE INDEX files_writer ON files (writer);
CREATE INDEX sessions_email ON sessions (email);
CREATE INDEX uploads_by_target ON uploads (writer, path, size);
COMMIT;
